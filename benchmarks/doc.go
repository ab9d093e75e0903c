// Package benchmarks measures protoc-gen-eda against the code it replaces.
// It holds no library code: everything is in its _test.go files, and the
// results and how to read them are in docs/benchmarks.md.
//
// Each compares against baselines in the same run:
//
//   - BenchmarkRoundTrip publishes an ordersv1.OrderPlaced (two line items)
//     and handles it in a Watermill router, on one runtime/mem bus: the
//     generated publisher and handler ("generated") against hand-written
//     typed Watermill code ("handwritten"), Watermill's components/cqrs with
//     its protobuf marshaler ("cqrs") and a router moving pre-marshaled bytes
//     ("raw"). Besides ns/op, B/op and allocs/op (one op is one message,
//     publish to handled, allocations of every goroutine counted) it reports
//     msgs/s and cpu-ns/msg (process CPU time, both cores, per message).
//
//   - BenchmarkEncode and BenchmarkHandle split the round trip's
//     per-message cost into its two halves, on one goroutine without the bus
//     or the router's goroutine, to show which side costs.
//
//   - BenchmarkGenerate runs protoc-gen-eda and protoc-gen-go in process on
//     the same CodeGeneratorRequest of a synthetic 2,000-message schema, and
//     BenchmarkGenerateOrders compiles and generates the orders example end
//     to end. BenchmarkProtocOrders runs the plugin binary through protoc
//     when protoc is on PATH.
//
//   - BenchmarkBreaking runs `eda breaking` and `buf breaking` (WIRE_JSON)
//     as processes on a 2,000-message schema of four packages against its
//     previous version, as CI does, with an interleaved eda/buf ratio
//     ("ratio") and eda's two steps in process ("compile", "check").
//     TestBreakingBenchAgrees checks that both report the same findings of
//     the rules they share, so the two do the same work; unlike the
//     benchmarks it runs with `go test ./benchmarks/` (about 10 s: it builds
//     eda and runs both tools once). Both are skipped without buf.
//
//   - BenchmarkConsume reads and acknowledges OrderPlaced events on each
//     real broker (NATS JetStream, Redis Streams, RabbitMQ, PostgreSQL;
//     each skipped without its EDA_TEST_*_URL, and no Kafka variant):
//     every round publishes 2,000 events with the generated publisher,
//     untimed, then a runtime.Router with the generated handler ("gen") and
//     the same broker's Watermill subscriber with proto.Unmarshal and Ack
//     ("raw") each consume them in a consumer group of their own, taking
//     turns. It reports both throughputs and their same-run ratio, by wall
//     time ("gen/raw") and by the process's CPU time ("gen/raw-cpu").
//
// Run them from the repository root (about five minutes on two
// cores), then benchstat from outside the module, so that `go run` leaves
// go.mod alone; 6 samples or more give confidence intervals:
//
//	go test -run '^$' -bench . -benchmem -count 6 ./benchmarks/ | tee /tmp/bench-final.txt
//	cd /tmp && go run golang.org/x/perf/cmd/benchstat@latest /tmp/bench-final.txt
//
// One benchmark at a time, for instance only the round trips:
//
//	go test -run '^$' -bench RoundTrip -benchmem -count 6 ./benchmarks/
//
// Compare medians, not single runs: two cores shared with anything else make
// single runs noisy. The benchmarks are never run as tests (there are no
// timed tests), so `go test ./...` only compiles them, apart from
// TestBreakingBenchAgrees, which checks eda and buf agree on the benchmark's
// schema.
package benchmarks
