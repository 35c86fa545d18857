//go:build race

package engine_test

// raceDetector is true in a build with the race detector, which slows
// the engine several times: load times are the binary's only without it.
const raceDetector = true
