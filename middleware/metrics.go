package middleware

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenguard/tokenguard/internal/promreg"
)

// Values of the "result" label of tokenguard_requests_total.
const (
	resultAllowed     = "allowed"
	resultDenied      = "denied"
	resultUnavailable = "unavailable"
)

// metrics holds the guard's Prometheus collectors. Label values come only
// from closed sets (Reason, the result constants, jwks result labels), never
// from tokens, subjects or other request data.
type metrics struct {
	rows          *rowPicker         // which row of requests and verify a request writes
	requests      *reasonCounter     // striped: written on every request
	verify        *durationHistogram // striped: written on every request
	jwksRefresh   *prometheus.CounterVec
	introspection *prometheus.CounterVec
	dpopReplays   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	rows := stripes()
	m := &metrics{
		rows: newRowPicker(rows),
		requests: newReasonCounter("tokenguard_requests_total",
			"Requests seen by the guard, by result (allowed, denied, unavailable) and reason.",
			allReasons, rows),
		verify: newDurationHistogram("tokenguard_verify_duration_seconds",
			"Time spent deciding on a request's credentials.",
			[]float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1, 5}, rows),
		jwksRefresh: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenguard_jwks_refresh_total",
			Help: "JWKS fetch attempts, by result.",
		}, []string{"result"}),
		introspection: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenguard_introspection_requests_total",
			Help: "Token introspection requests, by result.",
		}, []string{"result"}),
		dpopReplays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokenguard_dpop_replays_total",
			Help: "DPoP proofs rejected because their jti was already used.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	// Guards sharing a Registerer share the series: a guard that replaces
	// another (a reload) counts on from where it stopped.
	r := &promreg.Registration{Reg: reg}
	promreg.Add(r, &m.requests)
	promreg.Add(r, &m.verify)
	promreg.Add(r, &m.jwksRefresh)
	promreg.Add(r, &m.introspection)
	promreg.Add(r, &m.dpopReplays)
	if r.Err != nil {
		return nil, fmt.Errorf("middleware: registering metrics: %w", r.Err)
	}
	return m, nil
}

func resultFor(r Reason) string {
	switch r {
	case ReasonOK:
		return resultAllowed
	case ReasonKeysUnavailable, ReasonReplayStoreFull, ReasonReplayStoreUnavailable, ReasonIntrospectionUnavailable:
		return resultUnavailable
	}
	return resultDenied
}

// record counts one decided request: its reason and how long deciding
// took.
func (m *metrics) record(r Reason, d time.Duration) {
	row := m.rows.get()
	m.verify.observe(row.i, d)
	m.requests.inc(row.i, r)
	m.rows.put(row)
}

// count counts one request refused before any verification (Guard.Hygiene):
// tokenguard_requests_total only, so the verification histogram keeps
// timing verifications.
func (m *metrics) count(r Reason) {
	row := m.rows.get()
	m.requests.inc(row.i, r)
	m.rows.put(row)
}
