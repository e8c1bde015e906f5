//go:build unix

package interop_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killGroupOnCancel runs cmd in its own process group and kills the whole
// group when its context ends: npm runs node, which runs the gateway and
// the provider, and killing npm alone would leave them running.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// TestKillGroupOnCancel: at the deadline the command's children go too,
// not only the command (here sh, standing for npm, and its sleep).
func TestKillGroupOnCancel(t *testing.T) {
	if _, err := exec.LookPath("pgrep"); err != nil {
		t.Skip("no pgrep to look for the child with")
	}
	marker := fmt.Sprintf("sleep %d.25", 30+os.Getpid()%60) // unique enough to find
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", marker+" & wait")
	killGroupOnCancel(cmd)
	cmd.WaitDelay = 2 * time.Second
	_ = cmd.Run()
	deadline := time.Now().Add(2 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", marker).Output()
		if strings.TrimSpace(string(out)) == "" {
			return
		}
		if time.Now().After(deadline) {
			_ = exec.Command("pkill", "-f", marker).Run()
			t.Fatalf("the command's child outlived its deadline: pid %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
