package redistest

import (
	"errors"
	"strings"
	"testing"
)

func TestStartCluster(t *testing.T) {
	c, err := StartCluster(t.TempDir(), 3)
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := Do(c.Nodes[2].Addr(), "CLUSTER", "INFO")
	if err != nil || !strings.Contains(info, "cluster_slots_assigned:16384") {
		t.Fatalf("CLUSTER INFO: %v %q", err, info)
	}
	t.Log(c.URL())
}

func TestStartSentinel(t *testing.T) {
	s, err := StartSentinel(t.TempDir())
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr, err := s.MasterAddr()
	if err != nil || addr != s.Master.Addr() {
		t.Fatalf("MasterAddr = %q, %v; want %s", addr, err, s.Master.Addr())
	}
	t.Log(s.URL())
}
