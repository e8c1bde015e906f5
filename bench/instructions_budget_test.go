package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The instruction budget is what CI enforces of the hot path: timed
// ratios move with the neighbours' load, instruction counts do not.
// testdata/instruction-budget.txt holds, per algorithm, the largest
// allowed ratio of a full request (token cache off) to the bare signature
// check, and the largest allowed instructions per operation of the
// cached path and of the DPoP path. TestInstructionBudget runs
// instructions.sh (valgrind) with the budget's N1 and N2 and fails on any
// row above its limit; a change that adds instructions to the hot path
// must either give them back or raise the budget in the same commit,
// saying why.

// budgetFile is the committed budget, relative to bench/.
const budgetFile = "testdata/instruction-budget.txt"

// countRow is one row of instructions.sh's output.
type countRow struct {
	what, alg string
	perOp     int64
}

// budgetLimit is one line of the budget: for "guard", limit is the
// largest ratio guard/floor; for "cached" and "dpop", the largest
// instructions per operation.
type budgetLimit struct {
	what, alg string
	limit     float64
}

type budget struct {
	n1, n2 int
	limits []budgetLimit
}

// parseCounts reads instructions.sh's output: '#' lines, then
// "WHAT ALG count(N1) count(N2) per-op".
func parseCounts(text string) (map[string]countRow, error) {
	rows := make(map[string]countRow)
	sc := bufio.NewScanner(strings.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 5 {
			return nil, fmt.Errorf("line %d: want WHAT ALG count(N1) count(N2) per-op, got %q", line, sc.Text())
		}
		per, err := strconv.ParseInt(f[4], 10, 64)
		if err != nil || per <= 0 {
			return nil, fmt.Errorf("line %d: per-op %q is not a positive count", line, f[4])
		}
		rows[f[0]+" "+f[1]] = countRow{what: f[0], alg: f[1], perOp: per}
	}
	return rows, sc.Err()
}

// parseBudget reads the budget file: '#' lines, "n N1 N2", then
// "guard ALG RATIO", "cached ALG COUNT" and "dpop ALG COUNT" lines.
func parseBudget(text string) (budget, error) {
	var b budget
	sc := bufio.NewScanner(strings.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 3 {
			return b, fmt.Errorf("%s:%d: want three fields, got %q", budgetFile, line, sc.Text())
		}
		if f[0] == "n" {
			n1, err1 := strconv.Atoi(f[1])
			n2, err2 := strconv.Atoi(f[2])
			if err1 != nil || err2 != nil || n1 < 1 || n2 <= n1 {
				return b, fmt.Errorf("%s:%d: want n N1 N2 with 0 < N1 < N2, got %q", budgetFile, line, sc.Text())
			}
			b.n1, b.n2 = n1, n2
			continue
		}
		switch f[0] {
		case "guard", "cached", "dpop":
		default:
			return b, fmt.Errorf("%s:%d: %q: want guard, cached or dpop", budgetFile, line, f[0])
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil || v <= 0 {
			return b, fmt.Errorf("%s:%d: limit %q is not a positive number", budgetFile, line, f[2])
		}
		b.limits = append(b.limits, budgetLimit{what: f[0], alg: f[1], limit: v})
	}
	if b.n1 == 0 {
		return b, fmt.Errorf("%s: no 'n N1 N2' line", budgetFile)
	}
	if len(b.limits) == 0 {
		return b, fmt.Errorf("%s: no limits", budgetFile)
	}
	return b, sc.Err()
}

// overBudget returns one message per limit the counts exceed, or whose
// row is missing (a row that was not measured is not within budget).
func overBudget(b budget, rows map[string]countRow) []string {
	var out []string
	for _, l := range b.limits {
		row, ok := rows[l.what+" "+l.alg]
		if !ok {
			out = append(out, fmt.Sprintf("%s %s: not measured", l.what, l.alg))
			continue
		}
		if l.what != "guard" {
			if float64(row.perOp) > l.limit {
				out = append(out, fmt.Sprintf("%s %s: %d instructions per operation, budget %.0f (+%.2f %%)",
					l.what, l.alg, row.perOp, l.limit, 100*(float64(row.perOp)/l.limit-1)))
			}
			continue
		}
		floor, ok := rows["floor "+l.alg]
		if !ok {
			out = append(out, fmt.Sprintf("floor %s: not measured", l.alg))
			continue
		}
		if r := float64(row.perOp) / float64(floor.perOp); r > l.limit {
			out = append(out, fmt.Sprintf("guard %s: %d instructions per request, %.4f× the floor's %d, budget %.4f× (%d over the floor, budget %.0f)",
				l.alg, row.perOp, r, floor.perOp, l.limit, row.perOp-floor.perOp, (l.limit-1)*float64(floor.perOp)))
		}
	}
	return out
}

func TestOverBudget(t *testing.T) {
	b := budget{n1: 20, n2: 220, limits: []budgetLimit{
		{"guard", "ES256", 1.02}, {"cached", "ES256", 17000}, {"dpop", "ES256", 900000},
	}}
	rows := func(floor, guard, cached, dpop int64) map[string]countRow {
		m := make(map[string]countRow)
		for what, n := range map[string]int64{"floor": floor, "guard": guard, "cached": cached, "dpop": dpop} {
			if n > 0 {
				m[what+" ES256"] = countRow{what: what, alg: "ES256", perOp: n}
			}
		}
		return m
	}
	tests := []struct {
		name string
		rows map[string]countRow
		want []string // substrings, one per expected message
	}{
		{"within", rows(1000000, 1020000, 17000, 900000), nil},
		{"guard over", rows(1000000, 1020001, 17000, 900000), []string{"guard ES256: 1020001"}},
		{"cached over", rows(1000000, 1000000, 17001, 900000), []string{"cached ES256: 17001"}},
		{"dpop over", rows(1000000, 1000000, 17000, 900001), []string{"dpop ES256: 900001"}},
		{"all over", rows(1000000, 1100000, 18000, 1000000), []string{"guard", "cached", "dpop"}},
		{"row missing", rows(1000000, 0, 17000, 900000), []string{"guard ES256: not measured"}},
		{"floor missing", rows(0, 1000000, 17000, 900000), []string{"floor ES256: not measured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := overBudget(b, tt.rows)
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %d messages like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("message %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestParseBudgetAndCounts(t *testing.T) {
	b, err := parseBudget("# c\nn 20 220\nguard ES256 1.03\ncached ES256 17000\n")
	if err != nil || b.n1 != 20 || b.n2 != 220 || len(b.limits) != 2 || b.limits[0] != (budgetLimit{"guard", "ES256", 1.03}) {
		t.Fatalf("parseBudget = %+v, %v", b, err)
	}
	for _, bad := range []string{"", "n 20 220\n", "guard ES256 1.03\n", "n 220 20\nguard ES256 1\n", "n 20 220\nfloor ES256 1\n", "n 20 220\nguard ES256 x\n", "n 20 220\nguard ES256\n"} {
		if _, err := parseBudget(bad); err == nil {
			t.Errorf("parseBudget(%q): no error", bad)
		}
	}
	rows, err := parseCounts("# x\nfloor ES256 1 2 847042\nguard ES256 1 2 874606\n")
	if err != nil || rows["guard ES256"].perOp != 874606 || len(rows) != 2 {
		t.Fatalf("parseCounts = %v, %v", rows, err)
	}
	for _, bad := range []string{"floor ES256 1 2\n", "floor ES256 1 2 x\n", "floor ES256 1 2 -5\n"} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q): no error", bad)
		}
	}
}

// TestInstructionBudget counts the hot path's instructions with
// instructions.sh and holds them to the committed budget. It needs
// valgrind (.ci/run installs it); without it, or with -short, it skips
// and says so. About 90 s on 2 cores.
func TestInstructionBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the instruction budget needs about 90 s of valgrind")
	}
	if _, err := exec.LookPath("valgrind"); err != nil {
		t.Skip("valgrind is not installed (apt-get install valgrind): the instruction budget is NOT checked")
	}
	text, err := os.ReadFile(budgetFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseBudget(string(text))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "instructions.txt")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "instructions.sh")
	cmd.Env = append(os.Environ(), "INSTR_OUT="+out,
		"INSTR_N1="+strconv.Itoa(b.n1), "INSTR_N2="+strconv.Itoa(b.n2))
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("instructions.sh: %v\n%s", err, msg)
	}
	counted, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parseCounts(string(counted))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counted:\n%s", counted)
	if over := overBudget(b, rows); len(over) > 0 {
		t.Errorf("the hot path is over its instruction budget (%s):\n  %s\n"+
			"Find what the change added with callgrind_annotate (BENCHMARKS.md, \"Instructions per request\"); "+
			"if the cost is wanted, raise the budget in the same commit and say why.",
			budgetFile, strings.Join(over, "\n  "))
	}
}
