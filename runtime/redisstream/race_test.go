//go:build race

package redisstream_test

// raceEnabled: the race detector slows the suite's one-entry-per-read
// consumers past its timeouts at full message counts.
const raceEnabled = true
