package loadkit

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of /proc/<pid>/stat's times: USER_HZ, 100 on every
// Linux architecture Go supports.
const userHZ = 100

// procStat holds the fields of /proc/<pid>/stat this package reads.
type procStat struct {
	ppid     int
	cpu      uint64 // utime + stime, in clock ticks
	children uint64 // cutime + cstime: children that exited and were waited for
}

// readStat parses /proc/<pid>/stat.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	return parseStat(string(b))
}

// parseStat parses the text of a /proc/<pid>/stat file. The command name
// (field 2) may hold spaces and parentheses: the fields after it start
// past the last ')'. ppid is field 4, utime, stime, cutime and cstime are
// fields 14 to 17, so the 2nd and the 12th to 15th after it.
func parseStat(s string) (procStat, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return procStat{}, false
	}
	var v [5]uint64
	for j, k := range []int{1, 11, 12, 13, 14} {
		n, err := strconv.ParseUint(f[k], 10, 64)
		if err != nil {
			return procStat{}, false
		}
		v[j] = n
	}
	return procStat{ppid: int(v[0]), cpu: v[1] + v[2], children: v[3] + v[4]}, true
}

func ticks(n uint64) time.Duration { return time.Duration(n) * time.Second / userHZ }

// ProcessCPU returns the CPU time (user + system, all threads) process pid
// has used so far, or false if it cannot be read. Resolution: 10 ms.
func ProcessCPU(pid int) (time.Duration, bool) {
	st, ok := readStat(pid)
	return ticks(st.cpu), ok
}

// TreeCPU returns the CPU time (user + system) of process pid and all its
// descendants so far, including descendants that have exited and been
// waited for (their time is in their parent's cutime and cstime), or false
// if pid cannot be read. Servers that fork workers (nginx, Apache) are
// measured whole this way. A descendant that exits between two readings
// moves its time from its own entry to its parent's, so the sum never
// counts it twice.
func TreeCPU(pid int) (time.Duration, bool) {
	root, ok := readStat(pid)
	if !ok {
		return 0, false
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	kids := map[int][]int{} // ppid → pids
	stats := map[int]procStat{pid: root}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == pid {
			continue
		}
		if st, ok := readStat(p); ok {
			stats[p] = st
			kids[st.ppid] = append(kids[st.ppid], p)
		}
	}
	var total uint64
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		st := stats[p]
		total += st.cpu + st.children
		queue = append(queue, kids[p]...)
	}
	return ticks(total), true
}

// SelfCPU is ProcessCPU for this process, from getrusage (microseconds).
func SelfCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
