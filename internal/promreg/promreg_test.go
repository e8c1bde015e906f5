package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRegisterReusesIdenticalCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "x_total", Help: "x"}
	first, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	first.Add(2)
	second, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Fatal("the second registration did not return the registered counter")
	}
	second.Inc()
	if got := testutil.ToFloat64(first); got != 3 {
		t.Fatalf("x_total = %v, want 3 (both instances count into one series)", got)
	}
}

func TestRegisterRefusesConflicts(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})); err != nil {
		t.Fatal(err)
	}
	// Same name, other help: not the same series, so an error.
	if _, err := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "other"})); err == nil {
		t.Fatal("a conflicting collector was accepted")
	}
	// Identical descriptor, other type: the caller could not use it.
	if _, err := Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x_total", Help: "x"}, func() float64 { return 0 })); err == nil {
		t.Fatal("a collector of another type was returned as the same one")
	}
}
