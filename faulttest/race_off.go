//go:build !race

package faulttest

// raceEnabled reports whether this package was built with -race; TestMain
// then builds the gateway with -race too.
const raceEnabled = false
