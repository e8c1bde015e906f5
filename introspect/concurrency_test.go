package introspect

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestMaxConcurrent: past MaxConcurrent distinct requests in flight, a
// new token fails at once with ErrUnavailable instead of adding load on
// the authorization server; a slot frees when a request ends.
func TestMaxConcurrent(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte(`{"active":false}`))
	})
	cfg := baseConfig(s, newClock())
	cfg.MaxConcurrent = 1
	c := mustNew(t, cfg)
	first := make(chan error, 1)
	go func() {
		_, err := c.Introspect(bounded(t, 10*time.Second), "token-a")
		first <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.hits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if _, err := c.Introspect(bounded(t, 10*time.Second), "token-b"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second token while one is in flight: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v; it should not wait", d)
	}
	close(release)
	if err := <-first; !errors.Is(err, ErrInactive) {
		t.Fatalf("first request: %v, want ErrInactive", err)
	}
	if _, err := c.Introspect(bounded(t, 10*time.Second), "token-b"); !errors.Is(err, ErrInactive) {
		t.Fatalf("after the slot freed: %v, want ErrInactive", err)
	}
	if _, err := New(Config{Endpoint: s.endpoint(), Issuer: testIssuer, Audience: testAudience, ClientID: "rs", ClientSecret: "x", MaxConcurrent: -1}); err == nil {
		t.Error("negative MaxConcurrent accepted")
	}
}
