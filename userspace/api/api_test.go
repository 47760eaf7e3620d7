package api

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/events"
)

type fake struct{ bus *events.Bus }

func (f fake) Status() (Status, error) { return Status{Site: "a", PathsUp: 2}, nil }
func (f fake) Paths() ([]Path, error)  { return []Path{{ID: 1, Site: "b", State: "up"}}, nil }
func (f fake) Flows() ([]Flow, error)  { return nil, nil }
func (f fake) Events() *events.Bus     { return f.bus }
func (f fake) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("xwan_test 1\n")) })
}

func TestServerClient(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "x.sock")
	bus := events.New(10, nil)
	bus.Publish(events.Event{Type: events.OffCloudConnect, Site: "b"})
	s, err := Listen(sock, fake{bus})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	if _, err := Listen(sock, fake{bus}); err == nil {
		t.Fatal("a second daemon could take over the socket")
	}
	c := NewClient(sock)
	st, err := c.Status()
	if err != nil || st.Site != "a" || st.PathsUp != 2 {
		t.Fatalf("status %+v %v", st, err)
	}
	if m, err := c.Metrics(); err != nil || m != "xwan_test 1\n" {
		t.Fatalf("metrics %q %v", m, err)
	}
	p, err := c.Paths()
	if err != nil || len(p) != 1 || p[0].Site != "b" {
		t.Fatalf("paths %+v %v", p, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []events.Event
	go func() {
		// Published after the follower has the history.
		for len(bus.History()) < 2 {
			bus.Publish(events.Event{Type: events.OffCloudDisconnect, Site: "b", Reason: "peer silent"})
		}
	}()
	err = c.Follow(ctx, func(e events.Event) bool {
		got = append(got, e)
		return e.Type != events.OffCloudDisconnect
	})
	if err != nil || len(got) < 2 || got[0].Type != events.OffCloudConnect || got[len(got)-1].Type != events.OffCloudDisconnect {
		t.Fatalf("follow: %+v %v", got, err)
	}
}
