// Package promreg registers Prometheus collectors so that the instances of
// one component that share a registry share its series: a guard or token
// handler replaced by a new one (a configuration reload) keeps counting
// where the old one left off, instead of failing to register or starting
// its counters again at zero.
package promreg

import (
	"errors"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it; when reg already has an
// identical collector (same names, help and labels) of the same type, it
// returns that one instead, for the caller to use in c's place. Any other
// registration error is returned with c.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		// The same dynamic type, not merely one satisfying C (an
		// interface such as prometheus.Counter fits many).
		if existing, ok := are.ExistingCollector.(C); ok && reflect.TypeOf(existing) == reflect.TypeOf(c) {
			return existing, nil
		}
	}
	return c, err
}

// Registration registers several collectors in turn and keeps the first
// error, so a constructor can list them and check once.
type Registration struct {
	Reg prometheus.Registerer
	Err error // the first error; later Adds do nothing
}

// Add registers *c with r.Reg and, when an identical collector is already
// registered, replaces *c with it (see Register).
func Add[C prometheus.Collector](r *Registration, c *C) {
	if r.Err == nil {
		*c, r.Err = Register(r.Reg, *c)
	}
}
