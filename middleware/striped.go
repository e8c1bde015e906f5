package middleware

import (
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The two metrics written on every request, tokenguard_requests_total and
// tokenguard_verify_duration_seconds, are striped: each keeps several
// copies (rows) of its counts, a request adds to one row, and a scrape
// adds the rows up. prometheus.Counter and prometheus.Histogram keep one
// copy, so every request on every core does atomic adds on the same cache
// lines; with both cores of a 2-core VM busy on cached tokens, perf showed
// the histogram's Observe at 13 times its serial samples per request. The
// exposition is the same: the same names, labels, buckets and types.
//
// rowPicker hands a processor the row it used last, so the lines a core
// writes mostly stay in its own cache.

// stripes is how many rows each striped metric keeps: one per processor
// would do while the picker's pool holds them, the spare rows keep
// requests apart while it refills after a GC.
func stripes() int {
	n := 1 << bits.Len(uint(4*runtime.GOMAXPROCS(0)-1)) // the power of two ≥ 4 × cores
	return min(max(n, 8), 256)
}

// cacheLineWords is a cache line in uint64s. Rows of counts are at least
// this much longer than their contents, so no two rows share a line
// whatever the allocation's alignment.
const cacheLineWords = 8

// rowPicker hands out rows. Go exposes no processor id, but a sync.Pool
// keeps a private item per processor (P): a row put back is, almost
// always, what the next get on the same P returns, so each core keeps
// writing its own row. A row is a handle, not a lock: two requests may
// hold the same one (after a GC empties the pool, new handles are dealt
// round-robin), which costs only contention, never a lost count.
type rowPicker struct {
	pool sync.Pool
	rows []row // handles, one per row
	next atomic.Uint32
}

type row struct{ i int }

// newRowPicker returns a picker over n rows; n must be a power of two.
func newRowPicker(n int) *rowPicker {
	p := &rowPicker{rows: make([]row, n)}
	for i := range p.rows {
		p.rows[i].i = i
	}
	return p
}

func (p *rowPicker) get() *row {
	if r, _ := p.pool.Get().(*row); r != nil {
		return r
	}
	return &p.rows[p.next.Add(1)&uint32(len(p.rows)-1)]
}

func (p *rowPicker) put(r *row) { p.pool.Put(r) }

// reasonCounter is tokenguard_requests_total: a counter per Reason, with
// the result label derived from it.
type reasonCounter struct {
	desc    *prometheus.Desc
	created time.Time      // exposed as client_golang's own counters expose it
	reasons []Reason       // label values by index
	index   map[Reason]int // read-only after newReasonCounter
	ok      int            // index of ReasonOK, -1 when not counted: most requests, without the map
	rows    int
	stride  int // row length in words
	cells   []atomic.Uint64
}

func newReasonCounter(name, help string, reasons []Reason, rows int) *reasonCounter {
	c := &reasonCounter{
		desc:    prometheus.NewDesc(name, help, []string{"result", "reason"}, nil),
		created: time.Now(),
		reasons: slices.Clone(reasons),
		index:   make(map[Reason]int, len(reasons)),
		rows:    rows,
		stride:  len(reasons) + cacheLineWords,
	}
	c.ok = -1
	for i, r := range c.reasons {
		c.index[r] = i
		if r == ReasonOK {
			c.ok = i
		}
	}
	c.cells = make([]atomic.Uint64, c.rows*c.stride)
	return c
}

// inc counts, in row, one request decided with reason r. A Reason
// outside the set given to newReasonCounter is not counted.
func (c *reasonCounter) inc(row int, r Reason) {
	if r == ReasonOK && c.ok >= 0 {
		c.cells[row*c.stride+c.ok].Add(1)
		return
	}
	if i, ok := c.index[r]; ok {
		c.cells[row*c.stride+i].Add(1)
	}
}

// value returns the count for r, summed over the rows.
func (c *reasonCounter) value(r Reason) uint64 {
	i, ok := c.index[r]
	if !ok {
		return 0
	}
	var n uint64
	for row := range c.rows {
		n += c.cells[row*c.stride+i].Load()
	}
	return n
}

func (c *reasonCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *reasonCounter) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.reasons {
		ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(c.desc, prometheus.CounterValue, float64(c.value(r)), c.created, resultFor(r), string(r))
	}
}

// durationHistogram is tokenguard_verify_duration_seconds. A row holds a
// count per bucket (the last one +Inf) and the sum of the observations
// (float64 bits); the total count is the sum of the bucket counts, so a
// scrape never sees buckets and count disagree.
type durationHistogram struct {
	desc    *prometheus.Desc
	created time.Time
	bounds  []float64 // upper bounds, ascending
	rows    int
	stride  int
	cells   []atomic.Uint64
}

func newDurationHistogram(name, help string, bounds []float64, rows int) *durationHistogram {
	for i, b := range bounds {
		if math.IsInf(b, 0) || math.IsNaN(b) || i > 0 && b <= bounds[i-1] {
			panic("middleware: histogram bounds must be finite and strictly increasing")
		}
	}
	if len(bounds) == 0 {
		panic("middleware: histogram needs at least one bound")
	}
	h := &durationHistogram{
		desc:    prometheus.NewDesc(name, help, nil, nil),
		created: time.Now(),
		bounds:  slices.Clone(bounds),
		rows:    rows,
		stride:  len(bounds) + 2 + cacheLineWords, // buckets, +Inf, sum, padding
	}
	h.cells = make([]atomic.Uint64, h.rows*h.stride)
	return h
}

// sumCell is the index, within a row, of the sum of observations.
func (h *durationHistogram) sumCell() int { return len(h.bounds) + 1 }

// observe records d in row.
func (h *durationHistogram) observe(row int, d time.Duration) {
	v := d.Seconds()
	// The first bound ≥ v: the "le" bucket; len(bounds) is +Inf. A
	// forward scan, as most requests land in the first buckets.
	b := 0
	for b < len(h.bounds) && h.bounds[b] < v {
		b++
	}
	cells := h.cells[row*h.stride:]
	cells[b].Add(1)
	sum := &cells[h.sumCell()]
	for { // contended only by requests that picked the same row
		old := sum.Load()
		if sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (h *durationHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h *durationHistogram) Collect(ch chan<- prometheus.Metric) {
	counts := make([]uint64, len(h.bounds)+1)
	var sum float64
	for row := range h.rows {
		r := h.cells[row*h.stride:]
		for b := range counts {
			counts[b] += r[b].Load()
		}
		sum += math.Float64frombits(r[h.sumCell()].Load())
	}
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for b, bound := range h.bounds {
		cum += counts[b]
		buckets[bound] = cum
	}
	ch <- prometheus.MustNewConstHistogramWithCreatedTimestamp(h.desc, cum+counts[len(h.bounds)], sum, buckets, h.created)
}
