//go:build race

package webhook_test

// raceDetector is true in a build with the race detector, which slows
// every call several times: answer times are the binary's only without it.
const raceDetector = true
