//go:build race

package amqp_test

// raceEnabled: watermill-amqp v1.1.4's ConnectionWrapper replaces its
// connection and Connected channel without synchronization when it
// reconnects, which the race detector reports in any reader.
const raceEnabled = true
