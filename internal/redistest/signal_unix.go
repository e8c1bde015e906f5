//go:build unix

package redistest

import "syscall"

// Pause stops the server with SIGSTOP: it keeps its sockets open but
// reads, writes and answers nothing, like a hung host or one cut off by
// a silent network partition. Resume lets it run again.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume undoes Pause (SIGCONT).
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }
