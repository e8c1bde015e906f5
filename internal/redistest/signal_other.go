//go:build !unix

package redistest

import "errors"

// Pause would stop the server with SIGSTOP; there is none here, so it
// returns errors.ErrUnsupported.
func (s *Server) Pause() error { return errors.ErrUnsupported }

// Resume undoes Pause; here it returns errors.ErrUnsupported.
func (s *Server) Resume() error { return errors.ErrUnsupported }
