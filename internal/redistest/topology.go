package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// topologyWait bounds how long StartCluster and StartSentinel wait for the
// servers to agree (cluster_state:ok; sentinels that know the replica and
// each other).
const topologyWait = 20 * time.Second

// Cluster is a Redis Cluster of masters without replicas, each owning an
// equal share of the 16384 slots.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts n (at least 3) cluster-enabled servers in
// subdirectories of dir, gives each a contiguous share of the slots,
// introduces them with CLUSTER MEET and waits, bounded, until every node
// reports cluster_state:ok and knows all n. The caller calls Close.
func StartCluster(dir string, n int) (*Cluster, error) {
	if n < 3 {
		return nil, errors.New("redistest: a cluster needs at least 3 masters")
	}
	c := &Cluster{}
	buses := make([]int, n)
	for i := range n {
		ndir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			c.Close()
			return nil, err
		}
		var s *Server
		var err error
		for range 3 { // the bus port, picked free, could be taken too
			if buses[i], err = freePort(); err != nil {
				break
			}
			s, err = Start(ndir,
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(ndir, "nodes.conf"),
				"--cluster-port", strconv.Itoa(buses[i]),
				"--cluster-node-timeout", "2000",
				"--cluster-require-full-coverage", "yes")
			if err == nil {
				break
			}
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
	}
	const slots = 16384
	for i, s := range c.Nodes {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if _, err := Do(s.Addr(), "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			c.Close()
			return nil, fmt.Errorf("redistest: CLUSTER ADDSLOTSRANGE on %s: %w", s.Addr(), err)
		}
		if _, err := Do(s.Addr(), "CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil {
			c.Close()
			return nil, fmt.Errorf("redistest: CLUSTER SET-CONFIG-EPOCH on %s: %w", s.Addr(), err)
		}
	}
	for i, s := range c.Nodes[1:] {
		if _, err := Do(c.Nodes[0].Addr(), "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(s.Port()), strconv.Itoa(buses[i+1])); err != nil {
			c.Close()
			return nil, fmt.Errorf("redistest: CLUSTER MEET: %w", err)
		}
	}
	err := waitFor(func() error {
		for _, s := range c.Nodes {
			info, err := Do(s.Addr(), "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				return fmt.Errorf("%s: %s", s.Addr(), strings.ReplaceAll(info, "\r\n", " "))
			}
		}
		return nil
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("redistest: the cluster did not form: %w", err)
	}
	return c, nil
}

// URL returns a redis+cluster:// URL naming every node as a seed.
func (c *Cluster) URL() string {
	var q []string
	for _, s := range c.Nodes[1:] {
		q = append(q, "addr="+s.Addr())
	}
	return "redis+cluster://" + c.Nodes[0].Addr() + "?" + strings.Join(q, "&")
}

// Close kills every node.
func (c *Cluster) Close() {
	for _, s := range c.Nodes {
		s.Kill()
	}
}

// MasterName is the name StartSentinel's sentinels monitor.
const MasterName = "mymaster"

// Sentinel is a master, one replica of it and three sentinels monitoring
// them with a quorum of two, down-after-milliseconds 1000 and
// failover-timeout 3000.
type Sentinel struct {
	Master, Replica *Server
	Sentinels       []*Server
}

// StartSentinel starts the master, the replica and the sentinels in
// subdirectories of dir and waits, bounded, until the replica's link is
// up and every sentinel knows the replica and the two other sentinels.
// The caller calls Close.
func StartSentinel(dir string) (*Sentinel, error) {
	sub := func(name string) (string, error) {
		d := filepath.Join(dir, name)
		return d, os.MkdirAll(d, 0o700)
	}
	t := &Sentinel{}
	d, err := sub("master")
	if err == nil {
		t.Master, err = Start(d)
	}
	if err == nil {
		d, err = sub("replica")
	}
	if err == nil {
		t.Replica, err = Start(d, "--replicaof", "127.0.0.1", strconv.Itoa(t.Master.Port()))
	}
	if err == nil {
		err = waitFor(func() error {
			info, err := Do(t.Replica.Addr(), "INFO", "replication")
			if err == nil && !strings.Contains(info, "master_link_status:up") {
				err = errors.New("replica link not up")
			}
			return err
		})
	}
	for i := range 3 {
		if err != nil {
			break
		}
		if d, err = sub(fmt.Sprintf("sentinel%d", i)); err != nil {
			break
		}
		conf := filepath.Join(d, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\n"+
			"sentinel down-after-milliseconds %[1]s 1000\n"+
			"sentinel failover-timeout %[1]s 3000\n"+
			"sentinel parallel-syncs %[1]s 1\n", MasterName, t.Master.Port())
		if err = os.WriteFile(conf, []byte(text), 0o600); err != nil {
			break
		}
		var s *Server
		if s, err = startConf(d, conf, "--sentinel"); err == nil {
			t.Sentinels = append(t.Sentinels, s)
		}
	}
	if err == nil {
		err = waitFor(func() error {
			for _, s := range t.Sentinels {
				m, err := Do(s.Addr(), "SENTINEL", "MASTER", MasterName)
				if err != nil {
					return err
				}
				if !strings.Contains(m, "\nnum-slaves\n1\n") || !strings.Contains(m, "\nnum-other-sentinels\n2\n") {
					return fmt.Errorf("sentinel %s: %s", s.Addr(), strings.ReplaceAll(m, "\n", " "))
				}
			}
			return nil
		})
	}
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("redistest: Sentinel setup: %w", err)
	}
	return t, nil
}

// URL returns a redis+sentinel:// URL naming the three sentinels.
func (t *Sentinel) URL() string {
	q := []string{"master_name=" + MasterName}
	for _, s := range t.Sentinels[1:] {
		q = append(q, "addr="+s.Addr())
	}
	return "redis+sentinel://" + t.Sentinels[0].Addr() + "?" + strings.Join(q, "&")
}

// MasterAddr returns the master's address as the first sentinel that
// answers reports it.
func (t *Sentinel) MasterAddr() (string, error) {
	var last error
	for _, s := range t.Sentinels {
		a, err := Do(s.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
		if err != nil {
			last = err
			continue
		}
		hp := strings.Split(strings.TrimSpace(a), "\n")
		if len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = fmt.Errorf("unexpected answer %q", a)
	}
	return "", last
}

// Close kills every process.
func (t *Sentinel) Close() {
	for _, s := range append([]*Server{t.Master, t.Replica}, t.Sentinels...) {
		if s != nil {
			s.Kill()
		}
	}
}

// waitFor calls f every 50ms until it returns nil or topologyWait passes,
// and then returns its last error.
func waitFor(f func() error) error {
	deadline := time.Now().Add(topologyWait)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", topologyWait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Do sends one command to addr over a fresh connection, with a one-second
// deadline, and returns its reply as text: a status, integer or bulk
// string as is, an array's elements one a line (nested arrays flattened),
// a nil as "". An error reply is an error.
func Do(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	var out []string
	if err := readReply(bufio.NewReader(c), &out); err != nil {
		return "", err
	}
	return strings.Join(out, "\n"), nil
}

func readReply(r *bufio.Reader, out *[]string) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return errors.New("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		*out = append(*out, line[1:])
	case '-':
		return errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return err
		}
		if n < 0 {
			*out = append(*out, "")
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		*out = append(*out, string(buf[:n]))
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return err
		}
		for range n {
			if err := readReply(r, out); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}
