package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
)

// correctness is the outcome of the correctness pass for one peer.
type correctness struct {
	refused  []string // negative cases it refused, in negatives order
	missing  []string // negative cases it let through: checks it cannot make
	failures []string // wrong answers: a valid request refused, a refusal with a wrong status, no answer
}

// ok reports whether the peer may be measured: it accepted the valid
// requests and answered every negative case either way.
func (c correctness) ok() bool { return len(c.failures) == 0 }

// requestSpec is one request of the correctness pass.
type requestSpec struct {
	name          string
	authorization string // "" for none
	dpop          string // "" for none
}

// correctnessTimeout bounds each request of the pass.
const correctnessTimeout = 10 * time.Second

// correctnessPass sends p the valid requests and each negative case once
// (after a first valid request that lets it fetch its keys).
func correctnessPass(ctx context.Context, client *http.Client, p *peer, t *tokens) correctness {
	var c correctness
	do := func(rs requestSpec) (int, http.Header, error) {
		ctx, cancel := context.WithTimeout(ctx, correctnessTimeout)
		defer cancel()
		req, err := newRequest(ctx, p.base, rs.authorization, rs.dpop)
		if err != nil {
			return 0, nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return resp.StatusCode, resp.Header, nil
	}
	valid := []struct {
		rs   requestSpec
		want want
	}{{
		requestSpec{name: "valid Bearer token", authorization: "Bearer " + t.bearer[0].Token},
		p.wantAccept(t.bearer[0].Subject),
	}}
	if p.spec.supports(scDPoP) {
		proof, err := t.newProof(p.base, 0)
		if err != nil {
			c.failures = append(c.failures, fmt.Sprintf("making a DPoP proof: %v", err))
			return c
		}
		valid = append(valid, struct {
			rs   requestSpec
			want want
		}{requestSpec{name: "valid DPoP request", authorization: "DPoP " + t.dpop[0].Token, dpop: proof}, p.wantAccept(t.dpop[0].Subject)})
	}
	for _, v := range valid {
		status, h, err := do(v.rs)
		if err == nil {
			err = v.want.check(status, h)
		}
		if err != nil {
			c.failures = append(c.failures, fmt.Sprintf("%s: %v", v.rs.name, err))
		}
	}
	for _, neg := range negatives {
		status, h, err := do(requestSpec{name: neg, authorization: t.negatives[neg]})
		if err == nil {
			err = classify(status, h, p.spec.refuseStatuses)
		}
		switch {
		case err == nil:
			c.refused = append(c.refused, neg)
		case err == errLetThrough:
			c.missing = append(c.missing, neg)
		case p.spec.floor:
			// A floor must forward everything.
			c.failures = append(c.failures, fmt.Sprintf("%s: %v, want forwarded", neg, err))
		default:
			c.failures = append(c.failures, fmt.Sprintf("%s: %v", neg, err))
		}
	}
	if p.spec.floor && len(c.refused) > 0 {
		c.failures = append(c.failures, fmt.Sprintf("a floor refused %v: it must forward everything", c.refused))
	}
	return c
}

// newRequest builds GET RequestPath on base with the client's forged
// identity header and the given credentials.
func newRequest(ctx context.Context, base, authorization, proof string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+loadkit.RequestPath, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(loadkit.IdentityHeader, forgedSubject)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return req, nil
}
