//go:build !unix

package interop_test

import "os/exec"

// killGroupOnCancel: elsewhere the command alone is killed (exec's default).
func killGroupOnCancel(*exec.Cmd) {}
