package netutil

import (
	"net/http/httputil"
	"testing"
)

var _ httputil.BufferPool = (*BufferPool)(nil)

func TestBufferPool(t *testing.T) {
	var p BufferPool
	b := p.Get()
	if len(b) != copyBufferSize || cap(b) != copyBufferSize {
		t.Fatalf("Get: len %d cap %d, want %d", len(b), cap(b), copyBufferSize)
	}
	b[0] = 42
	p.Put(b)
	// A wrong-sized buffer is dropped, never lent out.
	p.Put(make([]byte, 10))
	p.Put(make([]byte, copyBufferSize, 2*copyBufferSize))
	for range 4 {
		if got := p.Get(); len(got) != copyBufferSize || cap(got) != copyBufferSize {
			t.Fatalf("Get after Put: len %d cap %d", len(got), cap(got))
		}
	}
}

func TestBufferPoolReusesWithoutAllocating(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	var p BufferPool
	p.Put(p.Get())
	// sync.Pool may drop items at any GC, so allow the odd miss; a pool
	// that never reused (or allocated on Put) would make one 32 KiB
	// buffer or one pointer per round.
	allocs := testing.AllocsPerRun(1000, func() { p.Put(p.Get()) })
	if allocs > 0.1 {
		t.Fatalf("Get+Put allocates %.2f times per round; want reuse", allocs)
	}
}
