package loadkit

import (
	"math"
	"math/bits"
	"time"
)

// Histogram layout: log-linear buckets in the style of HdrHistogram. Values
// below subCount nanoseconds get a bucket each; above, every power of two
// is split into subCount equal buckets, so a bucket is at most 1/subCount
// (1.6 %) of its values wide. Values of maxExp2 and beyond share the last
// bucket (the exact maximum is kept separately). The layout is fixed, so a
// Histogram is a constant 18 KiB however long the run, and histograms merge
// by adding counts.
const (
	subBits  = 6
	subCount = 1 << subBits // 64
	maxExp2  = 40           // 2^40 ns ≈ 18 min: far beyond any request's timeout
	nBuckets = subCount + (maxExp2-subBits)*subCount
)

// Histogram records latencies. It is not safe for concurrent use: each
// worker has its own, merged when a phase ends.
type Histogram struct {
	counts   [nBuckets]uint64
	n        uint64
	sum      time.Duration
	min, max time.Duration
}

// bucketOf returns the bucket index of a non-negative value in ns.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v is in [2^e, 2^(e+1))
	if e >= maxExp2 {
		return nBuckets - 1
	}
	shift := e - subBits
	sub := int(v>>shift) - subCount // in [0, subCount)
	return subCount + shift*subCount + sub
}

// bucketBounds returns bucket i's value range [lo, hi) in ns.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i) + 1
	}
	shift := (i - subCount) / subCount
	sub := uint64((i-subCount)%subCount) + subCount
	return sub << shift, (sub + 1) << shift
}

// Record adds one observation; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

// Merge adds o's observations to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// Mean returns the exact mean, or 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns the nearest-rank q-quantile (0 < q ≤ 1): the value of
// the ceil(q·n)-th smallest observation, as the midpoint of its bucket
// clamped to the exact min and max (the largest value is returned exactly),
// so it is within half a bucket (0.8 %) of the true value. It returns 0 for
// an empty Histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	// The epsilon stops a product that float rounding put a hair above an
	// integer (k + 1e-15) from moving up a rank.
	rank := uint64(math.Ceil(q*float64(h.n) - 1e-9))
	rank = max(1, min(rank, h.n))
	if rank == h.n {
		return h.max // known exactly
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketBounds(i)
			v := time.Duration(lo + (hi-lo)/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max // not reached: the counts add up to n
}
