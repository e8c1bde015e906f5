package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
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
	opts            SentinelOptions
}

// SentinelOptions are the credentials StartSentinelWith sets up.
type SentinelOptions struct {
	// MasterPassword is the requirepass (and masterauth) of the master
	// and the replica, which the sentinels know (sentinel auth-pass);
	// "" for none.
	MasterPassword string
	// SentinelPassword is the sentinels' own requirepass, which they use
	// with each other too (sentinel sentinel-pass); "" for none.
	SentinelPassword string
}

// StartSentinel is StartSentinelWith without passwords.
func StartSentinel(dir string) (*Sentinel, error) {
	return StartSentinelWith(dir, SentinelOptions{})
}

// StartSentinelWith starts the master, the replica and the sentinels in
// subdirectories of dir and waits, bounded, until the replica's link is
// up and every sentinel knows the replica and the two other sentinels.
// The caller calls Close.
func StartSentinelWith(dir string, o SentinelOptions) (*Sentinel, error) {
	sub := func(name string) (string, error) {
		d := filepath.Join(dir, name)
		return d, os.MkdirAll(d, 0o700)
	}
	var auth []string
	if o.MasterPassword != "" {
		auth = []string{"--requirepass", o.MasterPassword, "--masterauth", o.MasterPassword}
	}
	t := &Sentinel{opts: o}
	d, err := sub("master")
	if err == nil {
		t.Master, err = startServer(&Server{dir: d, extra: auth, password: o.MasterPassword})
	}
	if err == nil {
		d, err = sub("replica")
	}
	if err == nil {
		extra := append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(t.Master.Port())}, auth...)
		t.Replica, err = startServer(&Server{dir: d, extra: extra, password: o.MasterPassword})
	}
	if err == nil {
		err = waitFor(func() error {
			info, err := t.Replica.Do("INFO", "replication")
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
		if o.MasterPassword != "" {
			text += fmt.Sprintf("sentinel auth-pass %s %s\n", MasterName, confQuote(o.MasterPassword))
		}
		if o.SentinelPassword != "" {
			text += fmt.Sprintf("requirepass %[1]s\nsentinel sentinel-pass %[1]s\n", confQuote(o.SentinelPassword))
		}
		if err = os.WriteFile(conf, []byte(text), 0o600); err != nil {
			break
		}
		var s *Server
		if s, err = startServer(&Server{dir: d, conf: conf, extra: []string{"--sentinel"}, password: o.SentinelPassword}); err == nil {
			t.Sentinels = append(t.Sentinels, s)
		}
	}
	if err == nil {
		err = waitFor(func() error {
			for _, s := range t.Sentinels {
				m, err := s.Do("SENTINEL", "MASTER", MasterName)
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

// confQuote quotes s for a Redis configuration file, whose double-quoted
// strings take the escapes \\ and \" (and \xHH, which printable ASCII
// never needs).
func confQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// URL returns a redis+sentinel:// URL naming the three sentinels, with
// the sentinels' password in its authority and the master's in the
// password parameter.
func (t *Sentinel) URL() string {
	q := url.Values{"master_name": {MasterName}}
	if t.opts.MasterPassword != "" {
		q.Set("password", t.opts.MasterPassword)
	}
	for _, s := range t.Sentinels[1:] {
		q.Add("addr", s.Addr())
	}
	u := url.URL{Scheme: "redis+sentinel", Host: t.Sentinels[0].Addr(), RawQuery: q.Encode()}
	if t.opts.SentinelPassword != "" {
		u.User = url.UserPassword("", t.opts.SentinelPassword)
	}
	return u.String()
}

// MasterAddr returns the master's address as the first sentinel that
// answers reports it.
func (t *Sentinel) MasterAddr() (string, error) {
	var last error
	for _, s := range t.Sentinels {
		a, err := s.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
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

// Replication returns field of s's INFO replication ("role",
// "master_repl_offset", ...), or "?" when s does not answer or has no
// such field.
func (s *Server) Replication(field string) string {
	info, err := s.Do("INFO", "replication")
	if err != nil {
		return "?"
	}
	for l := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return v
		}
	}
	return "?"
}

// WaitReplicated waits, at most 5 s, until the replica has everything the
// master wrote (their replication offsets agree): then a failover loses
// nothing written before the call.
func (t *Sentinel) WaitReplicated() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, r := t.Master.Replication("master_repl_offset"), t.Replica.Replication("slave_repl_offset")
		if m == r && m != "?" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: replica at offset %s, master at %s, after 5s", r, m)
		}
		time.Sleep(20 * time.Millisecond)
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
	return roundTrip(c, time.Second, "", args)
}

// Do is the package's Do for s, over TLS and after AUTH when s has them.
func (s *Server) Do(args ...string) (string, error) { return s.do(time.Second, args...) }

func (s *Server) do(timeout time.Duration, args ...string) (string, error) {
	c, err := s.dial(timeout)
	if err != nil {
		return "", err
	}
	return roundTrip(c, timeout, s.password, args)
}

// roundTrip sends AUTH password (unless it is empty) and then args on c
// within timeout, returns args' reply as Do does, and closes c.
func roundTrip(c net.Conn, timeout time.Duration, password string, args []string) (string, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(c)
	if password != "" {
		if _, err := c.Write(command("AUTH", password)); err != nil {
			return "", err
		}
		var out []string
		if err := readReply(r, &out); err != nil {
			return "", fmt.Errorf("AUTH: %w", err)
		}
	}
	if _, err := c.Write(command(args...)); err != nil {
		return "", err
	}
	var out []string
	if err := readReply(r, &out); err != nil {
		return "", err
	}
	return strings.Join(out, "\n"), nil
}

// command encodes args as a RESP array of bulk strings.
func command(args ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
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
