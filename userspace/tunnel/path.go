package tunnel

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrPathDown is returned by Path.Send while the path has no session.
var ErrPathDown = errors.New("tunnel: path down")

// Backoff bounds the wait between two handshake attempts of a path: the
// first wait is about Min, each failure doubles it, up to Max.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff is used when PathConfig.Backoff is zero.
var DefaultBackoff = Backoff{Min: time.Second, Max: 30 * time.Second}

// delay is the wait before attempt n (0 after a session ended, n after n
// failed handshakes in a row): Min·2ⁿ capped at Max, of which a random half
// is taken away ("equal jitter"), so that the paths of a gateway that lost
// all its peers at once do not re-handshake in lockstep. r is in [0, 1).
func (b Backoff) delay(n int, r float64) time.Duration {
	d := b.Min
	for i := 0; i < n && d < b.Max; i++ {
		d = min(2*d, b.Max)
	}
	return d/2 + time.Duration(r*float64(d/2))
}

// PathConfig describes a path kept up by dialing.
type PathConfig struct {
	Session SessionConfig
	Backoff Backoff
	// OnEvent is called from the path's goroutine; it must not block long
	// (hand off to a channel or queue).
	OnEvent func(Event)
}

// Path keeps a session up to one remote endpoint: it handshakes, and after
// a failed handshake or the end of a session (the peer closed it or went
// silent) it handshakes again, waiting as Backoff says.
type Path struct {
	cfg PathConfig

	mu      sync.Mutex
	session *Session // nil while down
}

// NewPath checks cfg and returns a path that does nothing until Run.
func NewPath(cfg PathConfig) (*Path, error) {
	if err := cfg.Session.check(); err != nil {
		return nil, err
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Backoff.Min <= 0 || cfg.Backoff.Max < cfg.Backoff.Min {
		return nil, errors.New("tunnel: backoff needs 0 < Min <= Max")
	}
	return &Path{cfg: cfg}, nil
}

// Send sends one frame on the current session.
func (p *Path) Send(t FrameType, payload []byte) error {
	p.mu.Lock()
	s := p.session
	p.mu.Unlock()
	if s == nil {
		return ErrPathDown
	}
	return s.Send(t, payload)
}

// Session returns the path's current session, nil while it is down.
func (p *Path) Session() *Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.session
}

// Run keeps the path up until ctx is done, then closes the session (the
// peer gets a close_notify) and returns.
func (p *Path) Run(ctx context.Context) {
	info := PathInfo{Site: p.cfg.Session.Site, Link: p.cfg.Session.Link.Name, Remote: p.cfg.Session.Remote}
	failures := 0
	for ctx.Err() == nil {
		s, err := NewSession(ctx, p.cfg.Session)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && isAuthFailure(err):
			failures++
			p.emit(AuthFailure{Time: time.Now(), PathInfo: info, Reason: err})
		case err != nil:
			failures++
			p.emit(HandshakeFailure{Time: time.Now(), PathInfo: info, Reason: err})
		default:
			failures = 0
			p.setSession(s)
			p.emit(Connect{Time: time.Now(), PathInfo: info})
			select {
			case <-s.Done():
			case <-ctx.Done():
				s.Close()
			}
			p.setSession(nil)
			p.emit(Disconnect{Time: time.Now(), PathInfo: info, Reason: s.Err()})
		}
		wait := time.NewTimer(p.cfg.Backoff.delay(failures, rand.Float64()))
		select {
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
		}
	}
}

func (p *Path) setSession(s *Session) {
	p.mu.Lock()
	p.session = s
	p.mu.Unlock()
}

func (p *Path) emit(e Event) {
	if p.cfg.OnEvent != nil {
		p.cfg.OnEvent(e)
	}
}
