package gateway

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The PromQL README.md shows for dashboards must name metrics and labels
// the gateway exports: read from the README, checked against a real
// /metrics scrape after some traffic, so neither can drift from the other.

// readmePromQL returns every fenced promql block of README.md.
func readmePromQL(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	rest := string(data)
	for {
		var block string
		var ok bool
		if _, rest, ok = strings.Cut(rest, "\n```promql\n"); !ok {
			break
		}
		if block, rest, ok = strings.Cut(rest, "\n```\n"); !ok {
			t.Fatal("README.md: a promql block does not end")
		}
		blocks = append(blocks, block)
	}
	if len(blocks) == 0 {
		t.Fatal("README.md has no promql block")
	}
	return blocks
}

// promQLExprs splits a promql block into its expressions: a comment line
// ends the one before it, and other lines continue it.
func promQLExprs(block string) []string {
	var exprs []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			exprs = append(exprs, s)
		}
		cur.Reset()
	}
	for line := range strings.Lines(block) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return exprs
}

var (
	// A metric reference and its label matchers, if any.
	promMetric = regexp.MustCompile(`\b(tokenguard_[a-z0-9_]+)(\{[^}]*\})?`)
	// One label matcher: name, operator, value.
	promMatcher = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	// by (...) or without (...).
	promGrouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// exposition is a parsed /metrics page.
type exposition struct {
	types  map[string]string              // family name → counter, gauge, histogram, ...
	series map[string][]map[string]string // sample name → the label sets it has
}

// parseExposition parses the Prometheus text format, enough for this
// test: TYPE lines and samples, with quoted label values and escapes.
func parseExposition(t testing.TB, body string) exposition {
	t.Helper()
	e := exposition{types: map[string]string{}, series: map[string][]map[string]string{}}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			e.types[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			t.Fatalf("/metrics: %q", line)
		}
		name, labels := line[:end], map[string]string{}
		if line[end] == '{' {
			rest := line[end+1:]
			for {
				rest = strings.TrimLeft(rest, ", ")
				if strings.HasPrefix(rest, "}") {
					break
				}
				k, v, ok := strings.Cut(rest, `="`)
				if !ok {
					t.Fatalf("/metrics: labels of %q", line)
				}
				var val strings.Builder
				i := 0
				for ; i < len(v) && v[i] != '"'; i++ {
					if v[i] == '\\' && i+1 < len(v) {
						i++
						switch v[i] {
						case 'n':
							val.WriteByte('\n')
							continue
						}
					}
					val.WriteByte(v[i])
				}
				if i == len(v) {
					t.Fatalf("/metrics: unterminated label value in %q", line)
				}
				labels[k] = val.String()
				rest = v[i+1:]
			}
		}
		e.series[name] = append(e.series[name], labels)
	}
	return e
}

// family returns the metric family a sample name belongs to: itself, or
// for name_bucket, _sum and _count, the histogram or summary it is part of.
func (e exposition) family(name string) (string, bool) {
	if _, ok := e.types[name]; ok {
		return name, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if typ := e.types[base]; typ == "histogram" || (typ == "summary" && suffix != "_bucket") {
				return base, true
			}
		}
	}
	return "", false
}

// checkPromQL returns what in blocks does not match e: a tokenguard_*
// name that is not a family of e or has no series, a label matched on or
// grouped by that its series lack, a value matched exactly that none of
// them has. checked counts the metric references.
func checkPromQL(e exposition, blocks []string) (problems []string, checked int) {
	hasLabel := func(sets []map[string]string, k string) bool {
		for _, l := range sets {
			if _, ok := l[k]; ok {
				return true
			}
		}
		return false
	}
	for _, block := range blocks {
		for _, expr := range promQLExprs(block) {
			var grouping []string
			for _, m := range promGrouping.FindAllStringSubmatch(expr, -1) {
				for l := range strings.SplitSeq(m[1], ",") {
					if l = strings.TrimSpace(l); l != "" {
						grouping = append(grouping, l)
					}
				}
			}
			bad := func(format string, args ...any) {
				problems = append(problems, fmt.Sprintf("%q: ", expr)+fmt.Sprintf(format, args...))
			}
			for _, ref := range promMetric.FindAllStringSubmatch(expr, -1) {
				name, matchers := ref[1], ref[2]
				checked++
				if _, ok := e.family(name); !ok {
					bad("%s is not a metric family in /metrics", name)
					continue
				}
				sets := e.series[name]
				if len(sets) == 0 {
					bad("/metrics has no %s series", name)
					continue
				}
				for _, m := range promMatcher.FindAllStringSubmatch(matchers, -1) {
					label, op, value := m[1], m[2], m[3]
					if !hasLabel(sets, label) {
						bad("%s has no label %q", name, label)
						continue
					}
					if op != "=" {
						continue // a regexp or a negation: the label is what can be checked
					}
					found := false
					for _, l := range sets {
						found = found || l[label] == value
					}
					if !found {
						bad("no %s series has %s=%q", name, label, value)
					}
				}
				for _, label := range grouping {
					if !hasLabel(sets, label) {
						bad("groups by %q, which %s does not have", label, name)
					}
				}
			}
		}
	}
	return problems, checked
}

// TestReadmePromQL: every tokenguard_* metric the README's PromQL uses is
// a family of a real scrape (its _bucket, _sum and _count series those of
// a histogram), its series exist, every label it matches on or groups by
// is a label of that series, and every value it matches exactly is one
// the gateway exported after an allowed and a denied request. The checker
// itself is shown to catch each kind of drift.
func TestReadmePromQL(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""))
	if got := status(t, "GET", g.proxy+"/orders/1", mint(t, is, "orders:read")); got != 200 {
		t.Fatalf("allowed request: %d", got)
	}
	if got := status(t, "GET", g.proxy+"/orders/1", ""); got != 401 {
		t.Fatalf("denied request: %d", got)
	}
	_, body := do(t, "GET", g.metric+"/metrics", "", nil)
	e := parseExposition(t, body)

	problems, checked := checkPromQL(e, readmePromQL(t))
	for _, p := range problems {
		t.Errorf("README.md's PromQL: %s", p)
	}
	if checked == 0 {
		t.Fatal("README's promql blocks name no tokenguard_* metric")
	}

	for _, tc := range []struct {
		name, expr string
	}{
		{"misspelled metric", `sum(rate(tokenguard_request_total[5m]))`},
		{"bucket of a counter", `rate(tokenguard_requests_total_bucket[5m])`},
		{"old reason label", `rate(tokenguard_requests_total{reason="token_expired"}[5m])`},
		{"no such label", `rate(tokenguard_upstream_requests_total{code=~"5.."}[5m])`},
		{"no such result", `rate(tokenguard_requests_total{result="rejected"}[5m])`},
		{"grouped by a missing label", "# a comment\nsum by (route) (\n  rate(tokenguard_requests_total[5m]))"},
	} {
		if p, _ := checkPromQL(e, []string{tc.expr}); len(p) == 0 {
			t.Errorf("%s: %q passed the check", tc.name, tc.expr)
		}
	}
}
