package events

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestBusHistorySubscribeLog(t *testing.T) {
	var log bytes.Buffer
	b := New(3, &log)
	ch, stop := b.Subscribe(10)
	for i := 0; i < 5; i++ {
		b.Publish(Event{Type: OffCloudConnect, Site: "b", Link: "wan1", Remote: "198.18.0.1:4754"})
	}
	h := b.History()
	if len(h) != 3 || h[0].Seq != 3 || h[2].Seq != 5 {
		t.Fatalf("history %+v", h)
	}
	for i := 1; i <= 5; i++ {
		select {
		case e := <-ch:
			if e.Seq != uint64(i) || e.Time.IsZero() {
				t.Fatalf("event %d: %+v", i, e)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("subscriber got nothing")
		}
	}
	stop()
	if _, open := <-ch; open {
		t.Fatal("channel open after stop")
	}
	lines := bytes.Split(bytes.TrimSpace(log.Bytes()), []byte("\n"))
	var e Event
	if len(lines) != 5 || json.Unmarshal(lines[4], &e) != nil || e.Type != OffCloudConnect || e.Site != "b" {
		t.Fatalf("log %q", log.String())
	}
	if b.Counts()[OffCloudConnect] != 5 {
		t.Fatalf("counts %v", b.Counts())
	}
}

func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	b := New(10, nil)
	_, stop := b.Subscribe(1)
	defer stop()
	for i := 0; i < 4; i++ {
		b.Publish(Event{Type: PathFailover})
	}
	if b.Dropped() != 3 {
		t.Fatalf("dropped %d, want 3", b.Dropped())
	}
}
