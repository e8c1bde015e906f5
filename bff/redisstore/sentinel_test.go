package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/bff/redisstore"
	"github.com/tokenguard/tokenguard/internal/redistest"
)

// failoverCall is one Store call made while the master is dead. It
// returns the call's error or, when the call succeeded, a description of
// what is wrong with its answer ("" for the right one): a success must be
// the answer Redis had before the kill, never an empty or stale one.
type failoverCall struct {
	name string
	call func(ctx context.Context, s *redisstore.Store) (wrong string, err error)
}

// TestSentinel: two stores (two gateway replicas) made by NewFromURL from
// one redis+sentinel:// URL share a session, a lock and an index; when
// the master dies, every call fails with bff.ErrStoreUnavailable, never
// bff.ErrNotFound (which the handler takes for "no session" and answers
// 401 login_required, clearing the cookie: a logout) nor an empty
// answer, and no call succeeds while no master is reachable; once the
// sentinels have promoted the replica, both stores work again by
// themselves, with what was written (and replicated) before the kill.
func TestSentinel(t *testing.T) {
	st, err := redistest.StartSentinel(t.TempDir())
	if errors.Is(err, redistest.ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	var s [2]*redisstore.Store
	for i := range s {
		if s[i], err = redisstore.NewFromURL(st.URL(), redisstore.Options{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s[i].Close() })
	}
	ctx := t.Context()

	// What the handler keeps: a session, the lock of its refresh (held
	// across the failover, so a second holder would mean two refresh
	// grants) and an index entry (back-channel logout).
	session := []byte("sealed session, written before the failover")
	if err := s[0].Set(ctx, "s/before", session, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := s[1].Get(ctx, "s/before"); err != nil || !bytes.Equal(got, session) {
		t.Fatalf("Get at the other replica: %q, %v", got, err)
	}
	if tok, err := s[0].Lock(ctx, "l/before", time.Minute); err != nil || tok == "" {
		t.Fatalf("Lock: %q, %v", tok, err)
	}
	if err := s[0].IndexAdd(ctx, "i/before", "m", time.Minute); err != nil {
		t.Fatal(err)
	}

	// Let the replica catch up, so all of it survives the failover
	// (replication is asynchronous: a write not yet replicated is lost).
	if err := st.WaitReplicated(); err != nil {
		t.Fatal(err)
	}

	calls := []failoverCall{
		{"Get the session", func(ctx context.Context, s *redisstore.Store) (string, error) {
			got, err := s.Get(ctx, "s/before")
			if err == nil && !bytes.Equal(got, session) {
				return fmt.Sprintf("got %q", got), nil
			}
			return "", err
		}},
		{"Set a session", func(ctx context.Context, s *redisstore.Store) (string, error) {
			return "", s.Set(ctx, "s/during", []byte("v"), time.Minute)
		}},
		{"Delete", func(ctx context.Context, s *redisstore.Store) (string, error) {
			return "", s.Delete(ctx, "s/never-written")
		}},
		{"Lock the held lock", func(ctx context.Context, s *redisstore.Store) (string, error) {
			tok, err := s.Lock(ctx, "l/before", time.Minute)
			if err == nil && tok != "" {
				return "a second holder got the lock", nil
			}
			return "", err
		}},
		{"Unlock with another token", func(ctx context.Context, s *redisstore.Store) (string, error) {
			return "", s.Unlock(ctx, "l/before", strings.Repeat("y", 43))
		}},
		{"IndexAdd", func(ctx context.Context, s *redisstore.Store) (string, error) {
			return "", s.IndexAdd(ctx, "i/during", "m", time.Minute)
		}},
		{"IndexMembers", func(ctx context.Context, s *redisstore.Store) (string, error) {
			m, err := s.IndexMembers(ctx, "i/before")
			if err == nil && !slices.Equal(m, []string{"m"}) {
				return fmt.Sprintf("members %q", m), nil
			}
			return "", err
		}},
		{"IndexRemove", func(ctx context.Context, s *redisstore.Store) (string, error) {
			return "", s.IndexRemove(ctx, "i/never-written", "m")
		}},
		{"Ping", func(ctx context.Context, s *redisstore.Store) (string, error) {
			return "", s.Ping(ctx)
		}},
	}
	// replicaOnly reports whether the replica still is one: with the
	// master dead, no master is then reachable anywhere.
	replicaOnly := func() bool {
		return st.Replica.Replication("role") == "slave"
	}

	killed := time.Now()
	if err := st.Master.Kill(); err != nil {
		t.Fatal(err)
	}
	const bound = 15 * time.Second
	var firstErr, resumed time.Time
	failed, masterless := 0, 0
	for resumed.IsZero() {
		if time.Since(killed) > bound {
			t.Fatalf("the stores did not work again within %v of the master's death (%d calls failed)", bound, failed)
		}
		ok := 0
		for i, store := range s {
			for _, c := range calls {
				before := replicaOnly()
				wrong, err := c.call(ctx, store)
				noMaster := before && replicaOnly()
				at := fmt.Sprintf("%s at replica %d, %v after the kill", c.name, i, time.Since(killed).Round(time.Millisecond))
				switch {
				case err == nil && wrong != "":
					t.Fatalf("%s: %s", at, wrong)
				case err == nil && noMaster:
					t.Fatalf("%s: succeeded while no master was reachable", at)
				case err == nil:
					ok++
				case errors.Is(err, bff.ErrNotFound):
					t.Fatalf("%s: %v; the handler would take it for no session and log the user out", at, err)
				case !errors.Is(err, bff.ErrStoreUnavailable):
					t.Fatalf("%s: %v, want ErrStoreUnavailable", at, err)
				default:
					if failed == 0 {
						firstErr = time.Now()
					}
					failed++
					if noMaster {
						masterless++
					}
				}
			}
		}
		if ok == len(s)*len(calls) {
			resumed = time.Now()
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if masterless == 0 {
		t.Fatalf("no call was made while no master was reachable (%d failed): the test proved nothing", failed)
	}
	if m, err := st.MasterAddr(); err != nil || m != st.Replica.Addr() {
		t.Fatalf("sentinels name %s (%v) as master, want the promoted replica %s", m, err, st.Replica.Addr())
	}

	// New writes at one store are seen at the other; a deleted key is
	// ErrNotFound again.
	if err := s[0].Set(ctx, "s/after", []byte("new"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := s[1].Get(ctx, "s/after"); err != nil || string(got) != "new" {
		t.Fatalf("Get of a session written after the failover, at the other replica: %q, %v", got, err)
	}
	if tok, err := s[1].Lock(ctx, "l/after", time.Minute); err != nil || tok == "" {
		t.Fatalf("Lock after the failover: %q, %v", tok, err)
	}
	if tok, err := s[0].Lock(ctx, "l/after", time.Minute); err != nil || tok != "" {
		t.Fatalf("Lock held at the other replica, after the failover: %q, %v", tok, err)
	}
	if err := s[1].Delete(ctx, "s/before"); err != nil {
		t.Fatal(err)
	}
	if _, err := s[0].Get(ctx, "s/before"); !errors.Is(err, bff.ErrNotFound) {
		t.Fatalf("Get after Delete at the other replica: %v, want ErrNotFound", err)
	}
	t.Logf("master killed; %d calls failed closed (%d with no master anywhere), the first %v after the kill; every call worked again %v after the kill",
		failed, masterless, firstErr.Sub(killed).Round(time.Millisecond), resumed.Sub(killed).Round(time.Millisecond))
}
