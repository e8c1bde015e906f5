package introspect

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tokenguard/tokenguard/internal/tokencache"
)

// errClosed is wrapped with ErrUnavailable after Close.
var errClosed = errors.New("client closed")

// flightGroup collapses concurrent lookups of one key into one call of a
// function, run on its own goroutine. Unlike golang.org/x/sync/singleflight,
// a waiter stops waiting when its context ends, and once every waiter has
// left the call is cancelled and forgotten, so a later caller starts
// afresh rather than joining a call nobody wants (as in tailscale's
// DoChanContext). The zero value is ready to use.
type flightGroup struct {
	mu     sync.Mutex                 // guards m, closed and every flight's waiters
	m      map[tokencache.Key]*flight // calls in progress
	closed bool                       // set by close; no call starts after it
	wg     sync.WaitGroup             // counts run goroutines; Add only under mu while !closed
}

// flight is one call in progress.
type flight struct {
	done    chan struct{}      // closed when res and err are set
	res     *Result            // written once before done is closed
	err     error              // written once before done is closed
	cancel  context.CancelFunc // cancels the call's context
	waiters int                // guarded by flightGroup.mu
}

// do returns fn's result for key, sharing one call among concurrent
// callers. fn runs on a new goroutine when no call for key is in progress,
// with a context that carries the values of the ctx of the caller who
// started it, but not its deadline or cancellation; that context is
// cancelled when every waiter has left. fn must bound its own running
// time. If ctx ends first, do returns an ErrUnavailable error wrapping
// ctx.Err().
func (g *flightGroup) do(ctx context.Context, key tokencache.Key, fn func(context.Context) (*Result, error)) (*Result, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, errClosed)
	}
	if g.m == nil {
		g.m = make(map[tokencache.Key]*flight)
	}
	f, ok := g.m[key]
	if !ok {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		g.m[key] = f
		g.wg.Add(1)
		go g.run(fctx, key, f, fn)
	}
	f.waiters++
	g.mu.Unlock()

	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		g.mu.Lock()
		if f.waiters--; f.waiters == 0 {
			if g.m[key] == f {
				delete(g.m, key)
			}
			f.cancel()
		}
		g.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// run calls fn and publishes its result.
func (g *flightGroup) run(ctx context.Context, key tokencache.Key, f *flight, fn func(context.Context) (*Result, error)) {
	defer g.wg.Done()
	f.res, f.err = fn(ctx)
	f.cancel()
	g.mu.Lock()
	if g.m[key] == f {
		delete(g.m, key)
	}
	g.mu.Unlock()
	close(f.done)
}

// close cancels every call in progress, refuses new ones, and waits for
// their goroutines to end.
func (g *flightGroup) close() {
	g.mu.Lock()
	g.closed = true
	for _, f := range g.m {
		f.cancel()
	}
	g.mu.Unlock()
	g.wg.Wait()
}
