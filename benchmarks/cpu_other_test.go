//go:build !unix

package benchmarks

import "time"

// cpuTime is not measured on this platform; cpu-ns/msg is not reported.
func cpuTime() time.Duration { return 0 }
