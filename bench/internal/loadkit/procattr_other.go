//go:build !linux

package loadkit

import "os/exec"

// SetDeathSignal does nothing here: only Linux has a parent-death signal.
// Helpers still exit when their stdin closes; the gateway is stopped
// explicitly.
func SetDeathSignal(cmd *exec.Cmd, group bool) {}

// TermGroup does nothing here.
func TermGroup(pgid int) {}

// KillGroup does nothing here.
func KillGroup(pgid int) {}
