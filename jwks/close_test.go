package jwks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"
)

// roundTripFunc serves requests in memory, so a Set can run inside a
// synctest bubble.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestCloseLeavesNoGoroutines runs a Set's whole life in a synctest
// bubble: synctest.Test fails if any goroutine the Set (or httprc)
// started is still blocked after Close.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	doc := jwksDoc(kRSA1(t))
	synctest.Test(t, func(t *testing.T) {
		hits := 0
		client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			hits++
			rec := httptest.NewRecorder()
			rec.Header().Set("Cache-Control", "max-age=60")
			rec.Write(doc)
			return rec.Result(), nil
		})}
		s, err := New(context.Background(), Config{
			URL:                "https://as.example/jwks",
			HTTPClient:         client,
			MinRefreshInterval: 10 * time.Second,
			RefreshRateLimit:   time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !s.Ready() {
			t.Fatal("not loaded")
		}
		if _, err := s.Lookup(context.Background(), "nope"); !errors.Is(err, ErrUnknownKID) {
			t.Fatalf("Lookup = %v", err)
		}
		time.Sleep(5 * time.Minute) // scheduled refreshes run every 60 s meanwhile
		synctest.Wait()
		if hits < 5 {
			t.Errorf("%d fetches in 5 minutes with max-age=60", hits)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
	})
}

// TestLookupEmptyKIDSeveralKeys: without a kid, a several-key set answers
// ErrUnknownKID at once, with no fetch.
func TestLookupEmptyKIDSeveralKeys(t *testing.T) {
	iss := newIssuer(t, jwksDoc(kRSA1(t), kEC(t)))
	s := newTestSet(t, testConfig(iss.srv.URL, &results{}))
	if _, err := s.Lookup(context.Background(), ""); !errors.Is(err, ErrUnknownKID) {
		t.Errorf("Lookup(\"\") = %v, want ErrUnknownKID", err)
	}
	if n := iss.hits.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
}
