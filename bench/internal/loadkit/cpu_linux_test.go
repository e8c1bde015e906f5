package loadkit

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestProcessCPU: /proc/<pid>/stat is parsed to the process's CPU time,
// which follows work this process does, and agrees with getrusage.
func TestProcessCPU(t *testing.T) {
	before, ok := ProcessCPU(os.Getpid())
	if !ok {
		t.Fatal("cannot read /proc/self's CPU time")
	}
	self0, ok := SelfCPU()
	if !ok {
		t.Fatal("getrusage failed")
	}
	// Burn CPU until /proc shows 50 ms more, for at most 10 s of wall time.
	var sum [32]byte
	deadline := time.Now().Add(10 * time.Second)
	var after time.Duration
	for time.Now().Before(deadline) {
		for range 1000 {
			sum = sha256.Sum256(sum[:])
		}
		if after, _ = ProcessCPU(os.Getpid()); after-before >= 50*time.Millisecond {
			break
		}
	}
	if after-before < 50*time.Millisecond {
		t.Fatalf("/proc CPU time went from %v to %v after 10 s of hashing", before, after)
	}
	self1, _ := SelfCPU()
	// Both count every thread; /proc has 10 ms ticks.
	if d, r := after-before, self1-self0; r < d-20*time.Millisecond || r > d+500*time.Millisecond {
		t.Errorf("/proc says %v of CPU, getrusage %v", d, r)
	}
	if _, ok := ProcessCPU(-1); ok {
		t.Error("a process that does not exist has a CPU time")
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	line := "42 (a b) c)) S 7 42 42 0 -1 4194560 100 0 0 0 150 50 20 5 20 0 1 0 100 0 0"
	st, ok := parseStat(line)
	if !ok || st.ppid != 7 || st.cpu != 200 || st.children != 25 {
		t.Errorf("parseStat = %+v, %v; want ppid 7, cpu 200, children 25", st, ok)
	}
	for _, bad := range []string{"", "42 (x", "42 (x) S 1 2", "42 (x) S 1 42 42 0 -1 0 0 0 0 0 abc 50 20 5"} {
		if _, ok := parseStat(bad); ok {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

// TestTreeCPU: a child's CPU time is counted in its parent's tree while it
// runs and after it has been waited for.
func TestTreeCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("burns CPU in a child process")
	}
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done")
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	before, ok := TreeCPU(os.Getpid())
	if !ok {
		t.Fatal("TreeCPU of this process failed")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	after, _ := TreeCPU(os.Getpid())
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if child >= 50*time.Millisecond && after-before < child/2 {
		t.Errorf("tree CPU grew by %v while a child used %v", after-before, child)
	}
	if _, ok := TreeCPU(-1); ok {
		t.Error("a process that does not exist has a tree CPU time")
	}
}
