package main

import (
	"fmt"
	"runtime/debug"
)

// version implements "tokenguard version": the module version, the VCS
// revision (and whether the tree had changes) and the Go version, as the
// build recorded them.
func (c *cli) version(args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(c.stderr, "tokenguard version: unexpected argument %q\nUsage: tokenguard version\n", args[0])
		return exitUsage
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(c.stderr, "tokenguard version: this binary has no build information")
		return exitError
	}
	fmt.Fprintln(c.stdout, versionLine(bi))
	return exitOK
}

// versionLine formats bi as "tokenguard VERSION (revision REV[, modified],
// TIME) GO". A binary built from a checkout (go build, go run) has the
// module version "(devel)"; one installed with go install has a tagged or
// pseudo version.
func versionLine(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	rev := ""
	if r := settings["vcs.revision"]; r != "" {
		rev = " (revision " + r
		if settings["vcs.modified"] == "true" {
			rev += ", modified"
		}
		if t := settings["vcs.time"]; t != "" {
			rev += ", " + t
		}
		rev += ")"
	}
	return "tokenguard " + v + rev + " " + bi.GoVersion
}
