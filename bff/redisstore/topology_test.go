package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/bff/redisstore"
	"github.com/tokenguard/tokenguard/internal/redistest"
)

// TestCluster: two stores (two gateway replicas) made by NewFromURL from
// one redis+cluster:// URL share sessions: Set at one, Get and Delete
// and Lock (exclusive) at the other, indexes (the index script runs on
// the slot's master), with keys spread over the masters.
func TestCluster(t *testing.T) {
	c, err := redistest.StartCluster(t.TempDir(), 3)
	if errors.Is(err, redistest.ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var s [2]*redisstore.Store
	for i := range s {
		if s[i], err = redisstore.NewFromURL(c.URL(), redisstore.Options{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s[i].Close() })
	}
	ctx := context.Background()
	const n = 100
	for i := range n {
		k := "session-" + strconv.Itoa(i)
		v := []byte(fmt.Sprintf("value %d", i))
		if err := s[0].Set(ctx, k, v, time.Minute); err != nil {
			t.Fatalf("Set %s: %v", k, err)
		}
		if got, err := s[1].Get(ctx, k); err != nil || string(got) != string(v) {
			t.Fatalf("Get %s at the other replica: %q, %v", k, got, err)
		}
	}
	for i := range n {
		k := "session-" + strconv.Itoa(i)
		if err := s[i%2].Delete(ctx, k); err != nil {
			t.Fatalf("Delete %s: %v", k, err)
		}
		if _, err := s[(i+1)%2].Get(ctx, k); !errors.Is(err, bff.ErrNotFound) {
			t.Fatalf("Get %s after Delete at the other replica: %v, want ErrNotFound", k, err)
		}
	}
	for i := range 20 {
		k := "lock-" + strconv.Itoa(i)
		tok, err := s[0].Lock(ctx, k, time.Minute)
		if err != nil || tok == "" {
			t.Fatalf("Lock %s: %q, %v", k, tok, err)
		}
		if other, err := s[1].Lock(ctx, k, time.Minute); err != nil || other != "" {
			t.Fatalf("Lock %s at the other replica while held: %q, %v", k, other, err)
		}
		if err := s[1].Unlock(ctx, k, tok); err != nil {
			t.Fatalf("Unlock %s: %v", k, err)
		}
		if again, err := s[1].Lock(ctx, k, time.Minute); err != nil || again == "" {
			t.Fatalf("Lock %s after Unlock: %q, %v", k, again, err)
		}
	}
	for i := range 20 {
		k := "i/index-" + strconv.Itoa(i)
		if err := s[0].IndexAdd(ctx, k, "m", time.Minute); err != nil {
			t.Fatalf("IndexAdd %s: %v", k, err)
		}
		if m, err := s[1].IndexMembers(ctx, k); err != nil || len(m) != 1 || m[0] != "m" {
			t.Fatalf("IndexMembers %s at the other replica: %q, %v", k, m, err)
		}
	}
	busy := 0
	for _, node := range c.Nodes {
		if v, err := redistest.Do(node.Addr(), "DBSIZE"); err == nil && v != "0" {
			busy++
		}
	}
	if busy < 2 {
		t.Fatalf("the 20 locks live on %d master(s) only", busy)
	}
}
