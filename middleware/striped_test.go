package middleware

import (
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestStripedMatchesClient feeds the same decisions and durations to the
// striped metrics and to client_golang's own CounterVec and Histogram, and
// expects the same gathered metric families: striping is invisible to a
// scraper.
func TestStripedMatchesClient(t *testing.T) {
	bounds := []float64{.00001, .0001, .001, .01, 1}
	reasons := []Reason{ReasonOK, ReasonExpired, ReasonKeysUnavailable}
	ours := prometheus.NewRegistry()
	const rows = 8
	rc := newReasonCounter("t_requests_total", "help", reasons, rows)
	dh := newDurationHistogram("t_duration_seconds", "help", bounds, rows)
	ours.MustRegister(rc, dh)

	ref := prometheus.NewRegistry()
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t_requests_total", Help: "help"}, []string{"result", "reason"})
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "t_duration_seconds", Help: "help", Buckets: bounds})
	ref.MustRegister(cv, hist)
	for _, r := range reasons {
		cv.WithLabelValues(resultFor(r), string(r)) // pre-created, as ours are
	}

	durations := []time.Duration{0, 5 * time.Microsecond, 10 * time.Microsecond, 10*time.Microsecond + 1, time.Millisecond, 3 * time.Second, time.Hour}
	for i := range 1000 {
		r := reasons[i%2] // ReasonKeysUnavailable stays at zero
		rc.inc(i%rows, r)
		cv.WithLabelValues(resultFor(r), string(r)).Inc()
		d := durations[i%len(durations)]
		dh.observe((i/3)%rows, d)
		hist.Observe(d.Seconds())
	}
	rc.inc(0, Reason("not_a_reason")) // not counted: the label set is closed

	got, gotSum := expose(t, ours)
	want, wantSum := expose(t, ref)
	if got != want {
		t.Errorf("striped exposition:\n%s\nclient_golang's:\n%s", got, want)
	}
	// The sums add the same numbers in another order.
	if math.Abs(gotSum-wantSum) > 1e-9*wantSum {
		t.Errorf("histogram sum %v, client_golang's %v", gotSum, wantSum)
	}
}

// expose returns the protobuf text of every family, sample and bucket g
// gathers, and the histogram's sum (which it leaves out of the text).
// Created timestamps must be present; their values are blanked.
func expose(t *testing.T, g prometheus.Gatherer) (string, float64) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	var sum float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Histogram != nil:
				sum = m.Histogram.GetSampleSum()
				m.Histogram.SampleSum = nil
				if m.Histogram.CreatedTimestamp == nil {
					t.Errorf("%s: no created timestamp", mf.GetName())
				}
				m.Histogram.CreatedTimestamp = nil
			case m.Counter != nil:
				if m.Counter.CreatedTimestamp == nil {
					t.Errorf("%s: no created timestamp", mf.GetName())
				}
				m.Counter.CreatedTimestamp = nil
			}
		}
		b.WriteString(mf.String())
		b.WriteByte('\n')
	}
	return b.String(), sum
}

// TestStripedConcurrent: concurrent requests, each writing the row the
// picker hands it, lose no counts.
func TestStripedConcurrent(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, dh := m.requests, m.verify
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				m.record(ReasonOK, time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if n := rc.value(ReasonOK); n != workers*each {
		t.Errorf("counted %d, want %d", n, workers*each)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(dh)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if c := mfs[0].GetMetric()[0].GetHistogram().GetSampleCount(); c != workers*each {
		t.Errorf("histogram count %d, want %d", c, workers*each)
	}
}

func TestStripedAllocatesNothing(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { m.record(ReasonOK, time.Millisecond) }); n != 0 {
		t.Errorf("%v allocations per request, want 0", n)
	}
}

// TestRowPicker: requests holding rows at the same time get different
// ones while there are rows to deal (one row for all would be one
// contended line again), and a row put back is reused rather than a new
// one dealt.
func TestRowPicker(t *testing.T) {
	const n = 8
	p := newRowPicker(n)
	held := map[int]bool{}
	var rows []*row
	for range n {
		r := p.get()
		if held[r.i] {
			t.Fatalf("row %d dealt twice while held", r.i)
		}
		held[r.i] = true
		rows = append(rows, r)
	}
	for _, r := range rows {
		p.put(r)
	}
	before := p.next.Load()
	for range 100 {
		p.put(p.get())
	}
	// sync.Pool may drop items (at a GC, and at random under -race): a few
	// new deals are allowed, one per get is not.
	if dealt := p.next.Load() - before; dealt > 50 {
		t.Errorf("100 get/put pairs dealt %d new rows: rows are not reused", dealt)
	}
}

func TestStripesBounds(t *testing.T) {
	if n := stripes(); n < 8 || n > 256 || n&(n-1) != 0 {
		t.Errorf("stripes() = %d: want a power of two in [8, 256]", n)
	}
}
