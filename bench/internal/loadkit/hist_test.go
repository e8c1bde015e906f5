package loadkit

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestBucketBounds checks that every value lands in a bucket whose range
// holds it and that buckets are narrow: the percentile error bound rests
// on both.
func TestBucketBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 1<<20 - 1, 1<<40 - 1}
	for range 10000 {
		values = append(values, rng.Uint64N(1<<40))
	}
	for _, v := range values {
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		if v < lo || v >= hi {
			t.Fatalf("bucketOf(%d) = %d with range [%d, %d)", v, i, lo, hi)
		}
		if v >= subCount && float64(hi-lo)/float64(lo) > 1.0/subCount {
			t.Fatalf("bucket %d [%d, %d) is wider than 1/%d of its values", i, lo, hi, subCount)
		}
	}
	if got := bucketOf(1 << 50); got != nBuckets-1 {
		t.Errorf("bucketOf(2^50) = %d, want the last bucket %d", got, nBuckets-1)
	}
}

// exactQuantile is the nearest-rank quantile of sorted.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(float64(len(sorted))*q + 0.999999999)
	return sorted[max(rank, 1)-1]
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name   string
		values func(*rand.Rand) time.Duration
		n      int
	}{
		{"uniform 0-10ms", func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(10 * time.Millisecond))) }, 5000},
		{"long tail", func(r *rand.Rand) time.Duration {
			return time.Duration(r.ExpFloat64() * float64(300*time.Microsecond))
		}, 20000},
		{"two modes", func(r *rand.Rand) time.Duration {
			if r.IntN(100) < 95 {
				return 200*time.Microsecond + time.Duration(r.Int64N(10000))
			}
			return 40*time.Millisecond + time.Duration(r.Int64N(1000000))
		}, 10000},
		{"few small exact values", func(r *rand.Rand) time.Duration { return time.Duration(r.IntN(60)) }, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			var h Histogram
			var all []time.Duration
			for range tt.n {
				d := tt.values(rng)
				h.Record(d)
				all = append(all, d)
			}
			slices.Sort(all)
			for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
				want := exactQuantile(all, q)
				got := h.Quantile(q)
				// Half a bucket, plus a nanosecond for the exact buckets.
				tol := time.Duration(float64(want)/(2*subCount)) + 1
				if got < want-tol || got > want+tol {
					t.Errorf("quantile(%v) = %v, want %v ± %v", q, got, want, tol)
				}
			}
			if h.Count() != uint64(tt.n) || h.Quantile(1) != all[len(all)-1] || h.min != all[0] {
				t.Errorf("count %d, max %v, min %v; want %d, %v, %v", h.Count(), h.Quantile(1), h.min, tt.n, all[len(all)-1], all[0])
			}
		})
	}
}

// TestQuantileRanks pins nearest-rank on tiny exact inputs, where an
// off-by-one in the rank shows.
func TestQuantileRanks(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{10, 20, 30, 40} {
		h.Record(d)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.25, 10}, {0.26, 20}, {0.5, 20}, {0.51, 30}, {0.75, 30}, {0.99, 40}, {1, 40}} {
		if got := h.Quantile(tt.q); got != tt.want {
			t.Errorf("quantile(%v) of 10,20,30,40 = %v, want %v", tt.q, got, tt.want)
		}
	}
	var h100 Histogram
	for i := range 100 {
		h100.Record(time.Duration(i + 1))
	}
	if got := h100.Quantile(0.99); got != 99 {
		t.Errorf("p99 of 1..100 = %v, want 99", got)
	}
}

func TestHistogramMergeAndEmpty(t *testing.T) {
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 || empty.Count() != 0 {
		t.Error("empty Histogram: want zeros")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var a, b, all Histogram
	for i := range 3000 {
		d := time.Duration(rng.Int64N(int64(time.Second)))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	a.Merge(&empty)
	if a != all {
		t.Error("merging two histograms differs from recording everything in one")
	}
	var neg Histogram
	neg.Record(-time.Second)
	if neg.Quantile(1) != 0 {
		t.Errorf("a negative duration counts as %v, want 0", neg.Quantile(1))
	}
}
