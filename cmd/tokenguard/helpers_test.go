package main

import (
	"net/http"

	"github.com/tokenguard/tokenguard/internal/testkit"
)

// Short names for the shared fixtures.
const (
	wait      = testkit.Wait
	validYAML = testkit.ValidYAML
)

type lockedBuffer = testkit.LockedBuffer

var (
	envOf  = testkit.EnvOf
	edit   = testkit.Edit
	client = &http.Client{Timeout: wait}
)
