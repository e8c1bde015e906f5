package redistest

import (
	"errors"
	"net/url"
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

func TestStartTLS(t *testing.T) {
	s, ca, err := StartTLS(t.TempDir(), "pw-"+t.Name())
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Kill()
	if v, err := s.Do("SET", "k", "v"); err != nil || v != "OK" {
		t.Fatalf("SET over TLS after AUTH = %q, %v", v, err)
	}
	if err := Ping(s.Addr()); err == nil {
		t.Error("a plain-text PING was answered: the server is not TLS-only")
	}
	if _, err := Do(s.Addr(), "PING"); err == nil {
		t.Error("a plain-text command was answered")
	}
	t.Log(ca.CertFile)
}

func TestStartSentinelWith(t *testing.T) {
	o := SentinelOptions{MasterPassword: "master pw/+=", SentinelPassword: "sentinel:pw@"}
	s, err := StartSentinelWith(t.TempDir(), o)
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if addr, err := s.MasterAddr(); err != nil || addr != s.Master.Addr() {
		t.Fatalf("MasterAddr = %q, %v; want %s", addr, err, s.Master.Addr())
	}
	for _, srv := range []*Server{s.Master, s.Sentinels[0]} {
		if _, err := Do(srv.Addr(), "INFO"); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Errorf("%s answered INFO without AUTH: %v", srv.Addr(), err)
		}
	}
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if pw, _ := u.User.Password(); pw != o.SentinelPassword || u.Query().Get("password") != o.MasterPassword {
		t.Errorf("URL %s: sentinel password %q, master password %q", s.URL(), pw, u.Query().Get("password"))
	}
}
