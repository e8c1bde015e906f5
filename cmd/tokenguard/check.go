package main

import (
	"fmt"

	"github.com/tokenguard/tokenguard/gateway"
)

// check implements "tokenguard check -config FILE": the loading and
// validation serve does (environment expansion, the TLS and client key
// files, the guard's own checks), with no network I/O, then the effective
// configuration on stdout with secrets redacted. LoadConfig reports every
// mistake of every kind in one error, so one run shows them all.
func (c *cli) check(args []string) int {
	path, code, ok := c.configFlag("tokenguard check", "Usage: tokenguard check -config FILE\n\n"+
		"Validates FILE as serve would, without any network I/O, and prints the\n"+
		"effective configuration (defaults filled in, secrets redacted).\n"+
		"Exit status: 0 valid, 1 invalid, 2 usage error.\n\n", args)
	if !ok {
		return code
	}
	cfg, err := gateway.LoadConfig(path, c.env)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return exitError
	}
	out, err := cfg.EffectiveYAML()
	if err != nil {
		fmt.Fprintln(c.stderr, "tokenguard:", err)
		return exitError
	}
	_, _ = c.stdout.Write(out)
	return exitOK
}
