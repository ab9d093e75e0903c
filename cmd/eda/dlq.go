package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/pflag"

	"github.com/protoc-gen-eda/eda/runtime"
	// The brokers eda dlq reaches by URL.
	_ "github.com/protoc-gen-eda/eda/runtime/amqp"
	_ "github.com/protoc-gen-eda/eda/runtime/kafka"
	_ "github.com/protoc-gen-eda/eda/runtime/nats"
	_ "github.com/protoc-gen-eda/eda/runtime/redisstream"
	_ "github.com/protoc-gen-eda/eda/runtime/sqlbroker"
)

var dlqCommand = &command{
	name:    "dlq",
	summary: "requeue messages from a dead-letter topic",
	run:     runDLQ,
	help:    func(w io.Writer) { newDLQFlags().usage(w) },
}

const dlqUsage = `Usage: eda dlq requeue --broker <url> [flags]

Requeue moves messages from a dead-letter topic back to the topics they were
dead-lettered from, once the cause (a bug, an outage) is fixed. Each keeps
its id, loses its dead-letter metadata and gains an eda_requeued count; it
is acknowledged on the dead-letter topic only after its copy is published.
Messages the filters leave out go back to the end of the dead-letter topic.
It stops when the topic is read through or idle, or after --max messages,
and prints how many it requeued to each topic.

--broker is the broker's URL, as the service opens it: nats://, postgres://,
redis://, amqp:// or kafka://. eda reads the dead-letter topic in its own
consumer group (--group), so that it does not compete with other readers.

The exit status is 0 when it ran (whether or not anything was requeued) and
2 when it could not: bad usage, a broker it cannot reach.

Flags:
`

type dlqOptions struct {
	flags    *pflag.FlagSet
	broker   string
	topic    string
	group    string
	types    []string
	handlers []string
	max      int
	idle     time.Duration
	help     bool
}

func newDLQFlags() *dlqOptions {
	o := &dlqOptions{}
	fs := pflag.NewFlagSet("eda dlq", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.broker, "broker", "", "the broker's `url` (required)")
	fs.StringVar(&o.topic, "topic", runtime.DefaultDeadLetterTopic, "the dead-letter `topic`")
	fs.StringVar(&o.group, "group", "eda-dlq", "the consumer `group` eda reads the dead-letter topic in")
	fs.StringSliceVar(&o.types, "type", nil, "requeue only messages of this event or command `type` (repeatable)")
	fs.StringSliceVar(&o.handlers, "handler", nil, "requeue only messages this `handler` dead-lettered (repeatable)")
	fs.IntVar(&o.max, "max", 0, "stop after `n` requeued messages (0: no limit)")
	fs.DurationVar(&o.idle, "idle", 2*time.Second, "stop after this long without a message")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help")
	o.flags = fs
	return o
}

func (o *dlqOptions) usage(w io.Writer) {
	fmt.Fprint(w, dlqUsage)
	fmt.Fprint(w, o.flags.FlagUsages())
}

// runDLQ is eda dlq.
func runDLQ(args []string, stdout, stderr io.Writer) int {
	o := newDLQFlags()
	if err := o.flags.Parse(args); err != nil {
		return dlqUsageFailure(stderr, err)
	}
	if o.help {
		o.usage(stdout)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := o.requeue(ctx, stdout)
	var usage usageError
	if errors.As(err, &usage) {
		return dlqUsageFailure(stderr, err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "eda dlq: %v\n", err)
		return breakingCannotDo
	}
	return 0
}

func dlqUsageFailure(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "eda dlq: %v\nRun 'eda dlq --help' for usage.\n", err)
	return breakingCannotDo
}

func (o *dlqOptions) requeue(ctx context.Context, stdout io.Writer) error {
	args := o.flags.Args()
	switch {
	case len(args) != 1 || args[0] != "requeue":
		return usagef("give the subcommand: eda dlq requeue --broker <url>")
	case o.broker == "":
		return usagef("--broker is required: the URL of the broker holding the dead-letter topic")
	case o.max < 0 || o.idle <= 0:
		return usagef("--max must not be negative and --idle must be positive")
	}
	b, err := runtime.OpenBroker(ctx, o.broker, runtime.BrokerOptions{})
	if err != nil {
		return err
	}
	defer b.Close()
	sub, err := b.NewSubscriber(o.group)
	if err != nil {
		return fmt.Errorf("subscribe in group %s: %w", o.group, err)
	}
	opts := runtime.RequeueOptions{Max: o.max, Idle: o.idle}
	if len(o.types) > 0 || len(o.handlers) > 0 {
		opts.Filter = func(m *message.Message) bool {
			return (len(o.types) == 0 || slices.Contains(o.types, m.Metadata.Get(runtime.MetaType))) &&
				(len(o.handlers) == 0 || slices.Contains(o.handlers, m.Metadata.Get(runtime.MetaDeadLetterHandler)))
		}
	}
	stats, err := runtime.Requeue(ctx, sub, b.Publisher, o.topic, opts)
	topics := make([]string, 0, len(stats.ByTopic))
	for t := range stats.ByTopic {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		fmt.Fprintf(stdout, "%s\t%d\n", t, stats.ByTopic[t])
	}
	fmt.Fprintf(stdout, "requeued %d, left on %s %d\n", stats.Requeued, o.topic, stats.Kept)
	return err
}
