//go:build !linux

package main

import "os/exec"

// setDeathSignal does nothing here: only Linux has a parent-death signal.
// Helpers still exit when their stdin closes; the gateway is stopped
// explicitly.
func setDeathSignal(cmd *exec.Cmd) {}
