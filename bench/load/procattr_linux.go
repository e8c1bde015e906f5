package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill the child if the load generator
// dies without stopping it (the gateway has no lifeline on its stdin).
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
