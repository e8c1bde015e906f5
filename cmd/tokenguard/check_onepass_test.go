package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckAndServeReportEveryMistakeAtOnce: a file with an unknown key,
// a value the file's checks refuse and an issuer only the guard refuses
// gets all three from one run of check (and of serve), each with its key
// and line, in line order; an unknown key no longer hides the guard's
// mistakes.
func TestCheckAndServeReportEveryMistakeAtOnce(t *testing.T) {
	y := strings.Replace(validYAML, "issuer: https://as.example.com", "issuer: http://as.example.com", 1) + "bogus: 1\nlog_level: loud\n"
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	want := "tokenguard: config " + path + ":\n" +
		"\tline 7: issuers[0].issuer: must use https (plain http is allowed only to loopback, or with insecure_allow_http)\n" +
		"\tline 18: bogus: unknown key\n" +
		"\tline 19: log_level: \"loud\" is not one of debug, info, warn, error\n"
	code, stdout, stderr := runCheck(t, nil, "-config", path)
	if code != exitError || stderr != want || stdout != "" {
		t.Errorf("check: exit %d, stdout %q, stderr:\n%s\nwant exit %d and:\n%s", code, stdout, stderr, exitError, want)
	}

	var out, errOut lockedBuffer
	c := &cli{stdout: &out, stderr: &errOut, getenv: envOf(nil)}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if code := c.run(ctx, []string{"serve", "-config", path}); code != exitError || errOut.String() != want {
		t.Errorf("serve: exit %d, stderr:\n%s\nwant exit %d and:\n%s", code, errOut.String(), exitError, want)
	}
}
