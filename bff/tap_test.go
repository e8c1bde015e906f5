package bff_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// tap is the token handler's way to the authorization server: it records
// every request it carries (path, headers, form) and lets a test rewrite
// the answers of one endpoint.
type tap struct {
	mu   sync.Mutex
	reqs []tapped
	// edit, when set, may replace the answer to a request for path.
	edit func(path string, resp *http.Response, err error) (*http.Response, error)
}

type tapped struct {
	path   string
	header http.Header
	form   url.Values
}

func (t *tap) RoundTrip(req *http.Request) (*http.Response, error) {
	var form url.Values
	if req.Body != nil {
		body, _ := io.ReadAll(req.Body)
		_ = req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
		form, _ = url.ParseQuery(string(body))
	}
	t.mu.Lock()
	t.reqs = append(t.reqs, tapped{path: req.URL.Path, header: req.Header.Clone(), form: form})
	edit := t.edit
	t.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if edit != nil {
		return edit(req.URL.Path, resp, err)
	}
	return resp, err
}

// requests returns the requests made to path, in order.
func (t *tap) requests(path string) []tapped {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []tapped
	for _, r := range t.reqs {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// setEdit sets (or with nil clears) the answer rewriter.
func (t *tap) setEdit(f func(path string, resp *http.Response, err error) (*http.Response, error)) {
	t.mu.Lock()
	t.edit = f
	t.mu.Unlock()
}

// answer makes a response with status, content type JSON, and body.
func answer(status int, body string, hdr ...string) *http.Response {
	h := http.Header{"Content-Type": {"application/json"}}
	for _, kv := range hdr {
		k, v, _ := strings.Cut(kv, ": ")
		h.Add(k, v)
	}
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
	}
}
