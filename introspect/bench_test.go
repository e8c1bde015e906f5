package introspect

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

func BenchmarkIntrospectCached(b *testing.B) {
	s := newServer(b, respondJSON(b, activeClaims()))
	c := mustNew(b, baseConfig(s, newClock()))
	ctx := bounded(b, time.Minute)
	if _, err := c.Introspect(ctx, testToken); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Introspect(ctx, testToken); err != nil {
			b.Fatal(err)
		}
	}
	if n := s.hits.Load(); n != 1 {
		b.Fatalf("hits = %d, want 1", n)
	}
}

// BenchmarkIntrospectMiss: every call is a new token and one round trip
// to a local server over a kept-alive connection.
func BenchmarkIntrospectMiss(b *testing.B) {
	s := newServer(b, respondJSON(b, activeClaims()))
	c := mustNew(b, baseConfig(s, newClock()))
	ctx := bounded(b, 10*time.Minute)
	buf := []byte(testToken)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		tok := string(strconv.AppendInt(buf, int64(i), 10))
		if _, err := c.Introspect(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	body, err := json.Marshal(with(activeClaims(), "cnf", map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := parseResponse(body); err != nil {
			b.Fatal(err)
		}
	}
}
