package pathsel

import (
	"errors"
	"fmt"
	"time"
)

// Precedence of a path, as the product defines it for WAN links: 1 active,
// 2 passive, 3 last resort. The values are config.Precedence's.
type Precedence uint8

const (
	Unknown    Precedence = 0 // a peer link whose precedence is not known: treated as Active
	Active     Precedence = 1
	Passive    Precedence = 2
	LastResort Precedence = 3 // never carries off-cloud traffic
)

// Defaults; the package documentation says why.
const (
	DefaultLoss         = 0.03
	DefaultJitter       = 30 * time.Millisecond
	DefaultLatency      = 600 * time.Millisecond
	DefaultMinLost      = 2
	DefaultRecover      = 0.8
	DefaultEvalInterval = 10 * time.Second
	DefaultFailBad      = 2
	DefaultFailOf       = 3
	DefaultRecoverGood  = 3
	DefaultHoldDown     = 10 * time.Second
	DefaultMoveShare    = 0.2
	DefaultMoveInterval = time.Second
	DefaultMinSamples   = 5
)

// Thresholds say when a path is unacceptable. A zero field takes the
// default; a negative one turns that check off.
type Thresholds struct {
	Loss    float64       // fail above this share of lost probes (0.03 = 3 %)
	Jitter  time.Duration // fail above this jitter (30 ms)
	Latency time.Duration // fail above this mean RTT (600 ms)
	// MinLost: loss fails only with at least this many lost probes in the
	// window (2). With 33 probes per window one lost probe is 3.03 %: a
	// single loss must not stand for a 3 % loss rate.
	MinLost int
	// Recover is the share of each threshold a metric must be at or under
	// to count as good again (0.8: 2.4 %, 24 ms, 480 ms).
	Recover float64
}

// Config tunes a Selector. Zero fields take the defaults.
type Config struct {
	Thresholds Thresholds // for sites without their own (SetThresholds)

	EvalInterval time.Duration // quality evaluation period (10 s)
	FailBad      int           // a metric alerts when bad in FailBad ...
	FailOf       int           // ... of the last FailOf evaluations (2 of 3)
	RecoverGood  int           // consecutive good evaluations to clear an alert or recover from Down (3)
	HoldDown     time.Duration // a path that was unacceptable takes new flows after being Up this long (10 s)
	MoveShare    float64       // gradual moves: this share of the flows to move ... (0.2)
	MoveInterval time.Duration // ... per this interval (1 s)
	MinSamples   int           // fewer decided probes in the window: no verdict (5)
}

func (t Thresholds) withDefaults(d Thresholds) Thresholds {
	if t.Loss == 0 {
		t.Loss = d.Loss
	}
	if t.Jitter == 0 {
		t.Jitter = d.Jitter
	}
	if t.Latency == 0 {
		t.Latency = d.Latency
	}
	if t.MinLost == 0 {
		t.MinLost = d.MinLost
	}
	if t.Recover == 0 {
		t.Recover = d.Recover
	}
	return t
}

// DefaultThresholds are the product's: 3 % loss, 30 ms jitter, 600 ms.
func DefaultThresholds() Thresholds {
	return Thresholds{Loss: DefaultLoss, Jitter: DefaultJitter, Latency: DefaultLatency, MinLost: DefaultMinLost, Recover: DefaultRecover}
}

func (t Thresholds) check() error {
	if t.Loss > 1 {
		return fmt.Errorf("pathsel: loss threshold %v: a share, at most 1", t.Loss)
	}
	if t.Recover < 0 || t.Recover > 1 {
		return fmt.Errorf("pathsel: recover ratio %v: between 0 and 1", t.Recover)
	}
	return nil
}

func (c Config) withDefaults() Config {
	c.Thresholds = c.Thresholds.withDefaults(DefaultThresholds())
	if c.EvalInterval == 0 {
		c.EvalInterval = DefaultEvalInterval
	}
	if c.FailBad == 0 {
		c.FailBad = DefaultFailBad
	}
	if c.FailOf == 0 {
		c.FailOf = max(DefaultFailOf, c.FailBad)
	}
	if c.RecoverGood == 0 {
		c.RecoverGood = DefaultRecoverGood
	}
	if c.HoldDown == 0 {
		c.HoldDown = DefaultHoldDown
	}
	if c.MoveShare == 0 {
		c.MoveShare = DefaultMoveShare
	}
	if c.MoveInterval == 0 {
		c.MoveInterval = DefaultMoveInterval
	}
	if c.MinSamples == 0 {
		c.MinSamples = DefaultMinSamples
	}
	return c
}

func (c Config) check() error {
	var errs []error
	if c.EvalInterval < 0 || c.HoldDown < 0 || c.MoveInterval < 0 {
		errs = append(errs, errors.New("pathsel: negative timer"))
	}
	if c.FailBad < 1 || c.FailOf < c.FailBad || c.FailOf > 32 {
		errs = append(errs, fmt.Errorf("pathsel: fail after %d of %d evaluations: need 1 <= bad <= of <= 32", c.FailBad, c.FailOf))
	}
	if c.RecoverGood < 1 {
		errs = append(errs, fmt.Errorf("pathsel: recover after %d good evaluations: at least 1", c.RecoverGood))
	}
	if c.MoveShare <= 0 || c.MoveShare > 1 {
		errs = append(errs, fmt.Errorf("pathsel: move share %v: above 0, at most 1", c.MoveShare))
	}
	if c.MinSamples < 1 {
		errs = append(errs, fmt.Errorf("pathsel: min samples %d: at least 1", c.MinSamples))
	}
	if err := c.Thresholds.check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
