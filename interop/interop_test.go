// Package interop_test runs the Node.js interop suite (interop/README.md)
// from `go test ./...`, so the project's one test command covers it: the
// gateway, built from this checkout, against panva's oidc-provider and
// oauth4webapi (TestInterop); and the gateway's token handler (bff),
// in this process, through a whole browser session against
// oidc-provider (TestBFFWithOIDCProvider, bff_test.go), and its
// back-channel logout, PAR and DPoP-bound sessions on memory and Redis
// session stores (TestBFFRound2WithOIDCProvider, bff_round2_test.go;
// its Redis half needs redis-server). They need Node.js
// and npm; node_modules is installed with `npm ci` (from the npm
// registry) when missing. .ci/run installs it first; the tests are
// skipped only when node (or npm) is not on PATH, or with -short.
package interop_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the interop suite starts an authorization server and the gateway (about 10 s)")
	}
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not on PATH; the interop suite needs Node.js >= 20.19 and npm (.ci/run checks for them)", bin)
		}
	}

	if _, err := os.Stat("node_modules"); err != nil {
		run(t, 5*time.Minute, nil, "npm", "ci", "--no-audit", "--no-fund")
	}

	// One binary, built with the toolchain running this test, so the suite
	// tests this checkout and does not build it again.
	gw := filepath.Join(t.TempDir(), "tokenguard")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	run(t, 5*time.Minute, nil, goTool, "build", "-o", gw, "../cmd/tokenguard")

	out := run(t, 4*time.Minute, []string{"TOKENGUARD_BIN=" + gw}, "npm", "test")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "ℹ tests") || strings.HasPrefix(line, "ℹ pass") || strings.HasPrefix(line, "ℹ fail") {
			t.Log(line)
		}
	}
}

// run runs a command in this directory with a deadline, and fails the test
// with its output if it fails or overruns.
func run(t *testing.T, limit time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	killGroupOnCancel(cmd)
	cmd.WaitDelay = 10 * time.Second // bounded even if a grandchild keeps the pipes open
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v (limit %v)\n%s", name, strings.Join(args, " "), err, limit, buf.String())
	}
	return buf.String()
}
