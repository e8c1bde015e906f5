//go:build !linux

package loadkit

import "time"

// ProcessCPU is not measured here: reports leave their CPU figures out.
func ProcessCPU(int) (time.Duration, bool) { return 0, false }

// TreeCPU is not measured here either.
func TreeCPU(int) (time.Duration, bool) { return 0, false }

// SelfCPU is not measured here either.
func SelfCPU() (time.Duration, bool) { return 0, false }
