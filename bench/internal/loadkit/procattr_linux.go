package loadkit

import (
	"os/exec"
	"syscall"
)

// SetDeathSignal makes the kernel kill the child if the load generator
// dies without stopping it (the gateway has no lifeline on its stdin).
// With group, the child also leads a new process group, so that
// [KillGroup] reaches the workers a server like nginx or Apache forks.
func SetDeathSignal(cmd *exec.Cmd, group bool) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: group}
}

// TermGroup sends SIGTERM to every process of the group pgid leads.
func TermGroup(pgid int) { _ = syscall.Kill(-pgid, syscall.SIGTERM) }

// KillGroup sends SIGKILL to every process of the group pgid leads.
func KillGroup(pgid int) { _ = syscall.Kill(-pgid, syscall.SIGKILL) }
