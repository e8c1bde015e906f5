package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// deadlineWriter records the write deadlines set through
// http.ResponseController.
type deadlineWriter struct {
	*httptest.ResponseRecorder
	deadlines []time.Time
}

func (d *deadlineWriter) SetWriteDeadline(t time.Time) error {
	d.deadlines = append(d.deadlines, t)
	return nil
}

func TestExtendWriteRearms(t *testing.T) {
	const timeout = 100 * time.Millisecond
	dw := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
	rec := &accessRecord{id: "id"}
	w := &recordingWriter{ResponseWriter: dw, deadline: findWriteDeadliner(dw), writeTimeout: timeout, rec: rec}

	start := time.Now()
	w.Write([]byte("a"))
	w.Write([]byte("b"))
	w.extendWrite() // as accessLog does when the handler returns
	if len(dw.deadlines) != 1 {
		t.Fatalf("%d deadlines set by writes within %v, want 1", len(dw.deadlines), rearmSlack(timeout))
	}
	if d := dw.deadlines[0].Sub(start); d < timeout {
		t.Errorf("first deadline %v after the write began, want at least %v", d, timeout)
	}
	time.Sleep(2 * rearmSlack(timeout))
	before := time.Now()
	w.Write([]byte("c"))
	if len(dw.deadlines) != 2 {
		t.Fatalf("%d deadlines after a write %v later, want 2", len(dw.deadlines), 2*rearmSlack(timeout))
	}
	if d := dw.deadlines[1].Sub(before); d < timeout {
		t.Errorf("second deadline %v after the write began, want at least %v", d, timeout)
	}
	// Every write has at least timeout minus the slack from when it began.
	time.Sleep(2 * rearmSlack(timeout))
	for range 100 {
		began := time.Now()
		w.Write([]byte("d"))
		if d := dw.deadlines[len(dw.deadlines)-1].Sub(began); d < timeout-rearmSlack(timeout) {
			t.Fatalf("a write had %v, want at least %v", d, timeout-rearmSlack(timeout))
		}
	}

	// No timeout: no deadline.
	dw2 := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
	w2 := &recordingWriter{ResponseWriter: dw2, deadline: findWriteDeadliner(dw2), rec: rec}
	w2.Write([]byte("a"))
	w2.extendWrite()
	if len(dw2.deadlines) != 0 {
		t.Errorf("without response_write_timeout, %d deadlines set", len(dw2.deadlines))
	}
}

func TestRearmSlack(t *testing.T) {
	for _, c := range []struct{ timeout, want time.Duration }{
		{60 * time.Second, time.Millisecond},
		{time.Second, time.Millisecond},
		{700 * time.Millisecond, 700 * time.Microsecond},
		{time.Millisecond, time.Microsecond},
	} {
		if got := rearmSlack(c.timeout); got != c.want {
			t.Errorf("rearmSlack(%v) = %v, want %v", c.timeout, got, c.want)
		}
	}
}

// unwrapper is a middleware's writer that http.ResponseController sees
// through.
type unwrapper struct{ http.ResponseWriter }

func (u unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }

func TestFindWriteDeadliner(t *testing.T) {
	dw := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
	if got := findWriteDeadliner(unwrapper{unwrapper{dw}}); got != writeDeadliner(dw) {
		t.Errorf("through two Unwraps: %v, want the inner writer", got)
	}
	if got := findWriteDeadliner(httptest.NewRecorder()); got != nil {
		t.Errorf("a writer without deadlines: %v, want nil", got)
	}
	// The same answer as http.ResponseController's.
	for _, w := range []http.ResponseWriter{unwrapper{dw}, unwrapper{httptest.NewRecorder()}} {
		err := http.NewResponseController(w).SetWriteDeadline(time.Time{})
		if found := findWriteDeadliner(w) != nil; found != (err == nil) {
			t.Errorf("%T: found %v, ResponseController: %v", w, found, err)
		}
	}
}

// TestHeaderNamesCanonical: the gateway assigns these names to header
// maps directly (Header.Set without canonicalizing), which is Set only
// for names already in canonical form.
func TestHeaderNamesCanonical(t *testing.T) {
	for _, n := range []string{headerRequestID, HeaderSubject, HeaderClientID, HeaderScope} {
		if c := http.CanonicalHeaderKey(n); c != n {
			t.Errorf("%q is not canonical (%q)", n, c)
		}
	}
}
