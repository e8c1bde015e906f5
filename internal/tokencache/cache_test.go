package tokencache

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func key(i int) Key { return sha256.Sum256([]byte(fmt.Sprint(i))) }

var t0 = time.Unix(1_700_000_000, 0)

func TestGetAddExpiry(t *testing.T) {
	c, err := New[string](100)
	if err != nil {
		t.Fatal(err)
	}
	c.Add(key(1), "one", t0.Add(time.Minute), t0)
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"before expiry", t0.Add(59 * time.Second), true},
		{"at expiry", t0.Add(time.Minute), false},
		{"after expiry", t0.Add(2 * time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Add(key(1), "one", t0.Add(time.Minute), t0)
			v, ok := c.Get(key(1), tt.at)
			if ok != tt.want || (ok && v != "one") {
				t.Errorf("Get = %q, %v; want hit=%v", v, ok, tt.want)
			}
		})
	}
	if _, ok := c.Get(key(2), t0); ok {
		t.Error("hit for a key never added")
	}
}

func TestAddExpiredIsNotStored(t *testing.T) {
	c, _ := New[int](16)
	c.Add(key(1), 1, t0, t0)
	c.Add(key(2), 2, t0.Add(-time.Second), t0)
	if n := c.Len(); n != 0 {
		t.Errorf("Len = %d after adding expired entries, want 0", n)
	}
}

func TestRemove(t *testing.T) {
	c, _ := New[int](16)
	c.Add(key(1), 1, t0.Add(time.Hour), t0)
	c.Remove(key(1))
	if _, ok := c.Get(key(1), t0); ok {
		t.Error("hit after Remove")
	}
}

func TestSizeBound(t *testing.T) {
	const size = 64
	c, _ := New[int](size)
	for i := range 10 * size {
		c.Add(key(i), i, t0.Add(time.Hour), t0)
	}
	if n := c.Len(); n > size {
		t.Fatalf("Len = %d, want at most %d", n, size)
	}
	// The newest entries survive; the oldest were evicted.
	if _, ok := c.Get(key(10*size-1), t0); !ok {
		t.Error("newest entry evicted")
	}
	if _, ok := c.Get(key(0), t0); ok {
		t.Error("oldest entry survived 10x overfill")
	}
}

func TestReAddDoesNotLeak(t *testing.T) {
	c, _ := New[int](16)
	for i := range 1000 {
		c.Add(key(i%3), i, t0.Add(time.Hour), t0)
	}
	if n := c.Len(); n != 3 {
		t.Errorf("Len = %d, want 3", n)
	}
	if v, ok := c.Get(key(0), t0); !ok || v != 999 {
		t.Errorf("Get = %d, %v; want the last value 999", v, ok)
	}
}

func TestNewRejectsBadSize(t *testing.T) {
	for _, n := range []int{0, -1} {
		if _, err := New[int](n); err == nil {
			t.Errorf("New(%d) succeeded", n)
		}
	}
}

func TestConcurrent(t *testing.T) {
	c, _ := New[int](128)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := key(g*10000 + i%300)
				c.Add(k, i, t0.Add(time.Hour), t0)
				c.Get(k, t0)
				if i%50 == 0 {
					c.Remove(k)
				}
			}
		}()
	}
	wg.Wait()
	if n := c.Len(); n > 128+numShards {
		t.Errorf("Len = %d over the bound", n)
	}
}

func BenchmarkGetHit(b *testing.B) {
	c, _ := New[int](1024)
	k := key(7)
	c.Add(k, 7, t0.Add(time.Hour), t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(k, t0); !ok {
			b.Fatal("miss")
		}
	}
}

// TestKeyOf pins KeyOf to the SHA-256 of the token's bytes, so a cached
// entry can only ever be found with the exact token that was verified.
func TestKeyOf(t *testing.T) {
	for _, tok := range []string{"", "a", "eyJhbGciOiJFUzI1NiJ9.e30.sig", strings.Repeat("x", 9000)} {
		if got, want := KeyOf(tok), sha256.Sum256([]byte(tok)); got != want {
			t.Errorf("KeyOf(%.20q) = %x, want %x", tok, got, want)
		}
	}
	if KeyOf("abc") == KeyOf("abd") {
		t.Error("different tokens share a key")
	}
}
