package main

import (
	"crypto/sha256"
	"os"
	"testing"
	"time"
)

// TestProcessCPU: /proc/<pid>/stat is parsed to the process's CPU time,
// which follows work this process does, and agrees with getrusage.
func TestProcessCPU(t *testing.T) {
	before, ok := processCPU(os.Getpid())
	if !ok {
		t.Fatal("cannot read /proc/self's CPU time")
	}
	self0, ok := selfCPU()
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
		if after, _ = processCPU(os.Getpid()); after-before >= 50*time.Millisecond {
			break
		}
	}
	if after-before < 50*time.Millisecond {
		t.Fatalf("/proc CPU time went from %v to %v after 10 s of hashing", before, after)
	}
	self1, _ := selfCPU()
	// Both count every thread; /proc has 10 ms ticks.
	if d, r := after-before, self1-self0; r < d-20*time.Millisecond || r > d+500*time.Millisecond {
		t.Errorf("/proc says %v of CPU, getrusage %v", d, r)
	}
	if _, ok := processCPU(-1); ok {
		t.Error("a process that does not exist has a CPU time")
	}
}
