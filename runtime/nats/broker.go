package nats

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	natsgo "github.com/nats-io/nats.go"

	"github.com/protoc-gen-eda/eda/runtime"
)

func init() { runtime.RegisterBroker("nats", Open) }

// errSubjectOverlap is the JetStream API error code of a stream whose
// subjects another stream already captures.
const errSubjectOverlap natsgo.ErrorCode = 10065

// Open opens the broker a nats:// URL names (see the package doc for its
// parameters). runtime.OpenBroker calls it for nats:// URLs once this package
// is imported.
func Open(ctx context.Context, u *url.URL, opts runtime.BrokerOptions) (*runtime.Broker, error) {
	cfg, err := ConfigFromURL(u)
	if err != nil {
		return nil, fmt.Errorf("nats URL %s: %w", u.Redacted(), err)
	}
	cfg.Logger = opts.Logger
	return New(ctx, cfg)
}

// New connects to NATS and returns the broker cfg describes. ctx bounds the
// connection and the check that the server has JetStream.
func New(ctx context.Context, cfg Config) (*runtime.Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &broker{cfg: cfg}
	conn, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.init(ctx, conn); err != nil {
		conn.Close()
		return nil, err
	}
	return &runtime.Broker{
		Publisher:     &publisher{b: b},
		NewSubscriber: b.newSubscriber,
		Close:         b.close,
	}, nil
}

// broker holds the publishing connection and the subscribers it returned.
type broker struct {
	cfg  Config
	conn *natsgo.Conn
	js   natsgo.JetStreamContext
	// ready maps the topics whose stream is known to exist to their
	// subjects.
	ready sync.Map

	mu     sync.Mutex
	subs   []*subscriber
	closed bool
}

func (b *broker) init(ctx context.Context, conn *natsgo.Conn) error {
	var jsOpts []natsgo.JSOpt
	if b.cfg.MaxPublishPending > 0 {
		jsOpts = append(jsOpts, natsgo.PublishAsyncMaxPending(b.cfg.MaxPublishPending))
	}
	js, err := conn.JetStream(jsOpts...)
	if err != nil {
		return fmt.Errorf("JetStream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := js.AccountInfo(natsgo.Context(ctx)); err != nil {
		if errors.Is(err, natsgo.ErrJetStreamNotEnabled) || errors.Is(err, natsgo.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("the NATS server at %s does not have JetStream enabled: start nats-server with -js (or enable it for the account): %w", conn.ConnectedUrlRedacted(), err)
		}
		return fmt.Errorf("JetStream at %s does not answer: %w", conn.ConnectedUrlRedacted(), err)
	}
	b.conn, b.js = conn, js
	return nil
}

// connect opens a connection, trying each server for ConnectTimeout, or less
// if ctx ends sooner.
func (b *broker) connect(ctx context.Context) (*natsgo.Conn, error) {
	timeout := b.cfg.ConnectTimeout
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < timeout {
		timeout = max(time.Until(deadline), time.Millisecond)
	}
	logger := b.cfg.Logger
	opts := append([]natsgo.Option{
		natsgo.Timeout(timeout),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
			fields := watermill.LogFields{}
			if sub != nil {
				fields["subject"] = sub.Subject
			}
			logger.Error("NATS asynchronous error", err, fields)
		}),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil {
				logger.Info("NATS disconnected", watermill.LogFields{"err": err.Error()})
			}
		}),
		natsgo.ReconnectHandler(func(c *natsgo.Conn) {
			logger.Info("NATS reconnected", watermill.LogFields{"server": c.ConnectedUrlRedacted()})
		}),
	}, b.cfg.Options...)
	conn, err := natsgo.Connect(strings.Join(b.cfg.Servers, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s (connect_timeout %s): %w; check that nats-server runs there and the URL's host and port",
			redactedServers(b.cfg.Servers), timeout, err)
	}
	return conn, nil
}

func redactedServers(servers []string) string {
	out := make([]string, len(servers))
	for i, s := range servers {
		u, err := url.Parse(s)
		if err != nil {
			out[i] = "(unparsable URL)"
			continue
		}
		out[i] = u.Redacted()
	}
	return strings.Join(out, ",")
}

// subject returns the subject of topic, creating its stream if it is
// missing and the broker provisions streams.
func (b *broker) subject(js natsgo.JetStreamContext, topic string) (string, error) {
	// Checked and provisioned once per topic: publishing looks it up per
	// message.
	if subject, ok := b.ready.Load(topic); ok {
		return subject.(string), nil
	}
	if err := validSubject(topic); err != nil {
		return "", fmt.Errorf("topic %q cannot be a NATS subject: %w", topic, err)
	}
	subject := topic
	if b.cfg.Prefix != "" {
		subject = b.cfg.Prefix + "." + topic
	}
	if err := b.ensureStream(js, subject); err != nil {
		return "", fmt.Errorf("topic %s: %w", topic, err)
	}
	b.ready.Store(topic, subject)
	return subject, nil
}

// ensureStream makes sure a stream captures subject: the one named after
// it, created if missing, or any other when the broker does not provision.
func (b *broker) ensureStream(js natsgo.JetStreamContext, subject string) error {
	if b.cfg.NoProvision {
		if _, err := js.StreamNameBySubject(subject); err != nil {
			if errors.Is(err, natsgo.ErrNoMatchingStream) || errors.Is(err, natsgo.ErrStreamNotFound) {
				return fmt.Errorf("no JetStream stream captures subject %s, and provision=false: create one, or let the broker create it (provision=true)", subject)
			}
			return fmt.Errorf("look up the stream of subject %s: %w", subject, err)
		}
		return nil
	}
	name := streamName(subject)
	info, err := js.StreamInfo(name)
	if err == nil {
		if !captures(info.Config.Subjects, subject) {
			return fmt.Errorf("stream %s exists but does not capture subject %s (its subjects are %v): two topics differ only in characters a stream name cannot hold, or the stream was made by hand; rename the topic or set provision=false",
				name, subject, info.Config.Subjects)
		}
		return nil
	}
	if !errors.Is(err, natsgo.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %s: %w", name, err)
	}
	_, err = js.AddStream(&natsgo.StreamConfig{
		Name:        name,
		Description: "created by protoc-gen-eda's runtime/nats for subject " + subject,
		Subjects:    []string{subject},
		Storage:     b.cfg.Storage,
		Replicas:    b.cfg.Replicas,
		MaxAge:      b.cfg.MaxAge,
		Duplicates:  b.cfg.DuplicateWindow,
	})
	var apiErr *natsgo.APIError
	switch {
	case err == nil:
		b.cfg.Logger.Debug("Created JetStream stream", watermill.LogFields{"stream": name, "subject": subject})
		return nil
	case errors.Is(err, natsgo.ErrStreamNameAlreadyInUse):
		return nil // created by another process meanwhile
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errSubjectOverlap:
		// Another stream (one made by hand for a subject tree, say)
		// already stores the subject: publishing goes there.
		return nil
	default:
		return fmt.Errorf("create stream %s for subject %s: %w", name, subject, err)
	}
}

// captures says whether one of subjects, wildcards included, matches
// subject.
func captures(subjects []string, subject string) bool {
	want := strings.Split(subject, ".")
	for _, s := range subjects {
		toks := strings.Split(s, ".")
		match := true
		for i, tok := range toks {
			if tok == ">" {
				match = len(want) > i
				break
			}
			if i >= len(want) || (tok != "*" && tok != want[i]) {
				match = false
				break
			}
			if i == len(toks)-1 && len(want) != len(toks) {
				match = false
			}
		}
		if match {
			return true
		}
	}
	return false
}

// ensureConsumer creates the durable consumer of a group on the stream of
// subject, or updates the settings the broker controls. Creating it here,
// not in the subscription, matters: nats.go deletes a consumer it created
// itself when its subscription ends, which would make a group forget its
// position whenever one of its instances stops.
func (b *broker) ensureConsumer(js natsgo.JetStreamContext, subject, durable string) (stream string, err error) {
	stream, err = js.StreamNameBySubject(subject)
	if err != nil {
		return "", fmt.Errorf("look up the stream of subject %s: %w", subject, err)
	}
	info, err := js.ConsumerInfo(stream, durable)
	if err == nil {
		c := info.Config
		if c.AckWait == b.cfg.AckWaitTimeout && (b.cfg.MaxAckPending == 0 || c.MaxAckPending == b.cfg.MaxAckPending) {
			return stream, nil
		}
		c.AckWait = b.cfg.AckWaitTimeout
		if b.cfg.MaxAckPending > 0 {
			c.MaxAckPending = b.cfg.MaxAckPending
		}
		if _, err := js.UpdateConsumer(stream, &c); err != nil {
			return "", fmt.Errorf("update consumer %s of stream %s to ack_wait %s, max_ack_pending %d: %w", durable, stream, b.cfg.AckWaitTimeout, b.cfg.MaxAckPending, err)
		}
		return stream, nil
	}
	if !errors.Is(err, natsgo.ErrConsumerNotFound) {
		return "", fmt.Errorf("look up consumer %s of stream %s: %w", durable, stream, err)
	}
	_, err = js.AddConsumer(stream, &natsgo.ConsumerConfig{
		Durable:        durable,
		Description:    "consumer group of protoc-gen-eda's runtime/nats",
		DeliverSubject: natsgo.NewInbox(),
		DeliverGroup:   durable,
		DeliverPolicy:  natsgo.DeliverAllPolicy,
		AckPolicy:      natsgo.AckExplicitPolicy,
		AckWait:        b.cfg.AckWaitTimeout,
		MaxAckPending:  b.cfg.MaxAckPending,
		FilterSubject:  subject,
	})
	if err != nil && !errors.Is(err, natsgo.ErrConsumerNameAlreadyInUse) {
		var apiErr *natsgo.APIError
		if !errors.As(err, &apiErr) || (apiErr.ErrorCode != natsgo.JSErrCodeConsumerNameExists && apiErr.ErrorCode != natsgo.JSErrCodeConsumerAlreadyExists) {
			return "", fmt.Errorf("create consumer %s on stream %s: %w", durable, stream, err)
		}
	}
	return stream, nil
}

func (b *broker) close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := b.subs
	b.subs = nil
	b.mu.Unlock()
	var errs []error
	for _, s := range subs {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close subscriber: %w", err))
		}
	}
	b.conn.Close()
	return errors.Join(errs...)
}

// header is the NATS header of one outgoing message: what watermill-nats'
// NATSMarshaler writes (the metadata as headers, the message id in
// WatermillUUIDHdr), and the message id as Nats-Msg-Id when dedup is set.
// wmnats.NATSMarshaler reads it. All values share one slice, and headers
// are reused once their message is stored (nats.go has copied the bytes
// and keeps no reference), so a message costs no header allocations.
type header struct {
	h      natsgo.Header
	values []string
}

var headers = sync.Pool{New: func() any { return new(header) }}

// newHeader returns msg's header, from the pool.
func newHeader(msg *message.Message, dedup bool) *header {
	hd := headers.Get().(*header)
	n := len(msg.Metadata) + 2
	if hd.h == nil {
		hd.h = make(natsgo.Header, n)
	} else {
		clear(hd.h)
	}
	if cap(hd.values) < n {
		hd.values = make([]string, 0, n)
	}
	hd.values = hd.values[:0]
	hd.add(wmnats.WatermillUUIDHdr, msg.UUID)
	if dedup && msg.UUID != "" {
		hd.add(natsgo.MsgIdHdr, msg.UUID)
	}
	for k, v := range msg.Metadata {
		hd.add(k, v)
	}
	return hd
}

func (hd *header) add(k, v string) {
	hd.values = append(hd.values, v)
	i := len(hd.values)
	hd.h[k] = hd.values[i-1 : i : i]
}

// publisher publishes to the streams of topics.
type publisher struct{ b *broker }

// Publish publishes msgs to topic and returns once JetStream stored them
// all. Messages are sent without waiting for each acknowledgement (up to
// Config.MaxPublishPending of them, counting those of concurrent calls),
// so that concurrent publishers and a Publish of many messages (a
// runtime.Batch, the outbox relay) share round trips to the server.
func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	subject, err := p.b.subject(p.b.js, topic)
	if err != nil {
		return err
	}
	return p.publishBatch(topic, subject, msgs)
}

// publishRetries is how many times a single message's publish that
// reached no stream is sent again: nats.go's default for a synchronous
// publish.
const publishRetries = 2

// publishBatch sends msgs asynchronously, in order, and waits for every
// acknowledgement.
func (p *publisher) publishBatch(topic, subject string, msgs []*message.Message) error {
	dedup := !p.b.cfg.NoDedup
	// A batch larger than the client's window of pending acknowledgements
	// (Config.MaxPublishPending) waits for room instead of failing.
	opts := []natsgo.PubOpt{natsgo.StallWait(publishTimeout)}
	if len(msgs) == 1 {
		// Retry a publish that found no stream for the subject, as a
		// synchronous JetStream publish does: a stream's leader may be
		// changing. Not in a batch, where a message sent again could land
		// after the ones sent after it; the caller publishes the batch
		// again, and JetStream drops what it already stored by id.
		opts = append(opts, natsgo.RetryAttempts(publishRetries))
	}
	type sent struct {
		natsgo.PubAckFuture
		hd *header
	}
	futures := make([]sent, 0, len(msgs))
	var sendErr error
	for _, msg := range msgs {
		hd := newHeader(msg, dedup)
		f, err := p.b.js.PublishMsgAsync(&natsgo.Msg{Subject: subject, Data: msg.Payload, Header: hd.h}, opts...)
		if err != nil {
			sendErr = err
			break
		}
		futures = append(futures, sent{f, hd})
	}
	// Wait for what was sent even after a failure: the caller learns the
	// first message that was not stored.
	expired := make(chan struct{})
	timer := time.AfterFunc(publishTimeout, func() { close(expired) })
	defer timer.Stop()
	wait := func(i int) error {
		f := futures[i]
		select {
		case <-f.Ok():
			// Stored: nats.go is done with the message.
			headers.Put(f.hd)
			return nil
		case err := <-f.Err():
			return p.b.publishError(topic, subject, fmt.Errorf("message %d of %d (%s): %w", i+1, len(msgs), msgs[i].UUID, err))
		case <-expired:
			return p.b.publishError(topic, subject, fmt.Errorf("message %d of %d (%s): no acknowledgement within %s: %w", i+1, len(msgs), msgs[i].UUID, publishTimeout, natsgo.ErrTimeout))
		}
	}
	if len(futures) > 0 {
		// The last first: JetStream acknowledges a stream's messages in
		// order, so once it is in, the others mostly are too, and this
		// goroutine wakes once instead of once per message.
		last := len(futures) - 1
		lastErr := wait(last)
		for i := range last {
			if err := wait(i); err != nil {
				return err
			}
		}
		if lastErr != nil {
			return lastErr
		}
	}
	if sendErr != nil {
		return p.b.publishError(topic, subject, fmt.Errorf("message %d of %d (%s): %w", len(futures)+1, len(msgs), msgs[len(futures)].UUID, sendErr))
	}
	return nil
}

func (b *broker) publishError(topic, subject string, err error) error {
	if errors.Is(err, natsgo.ErrNoStreamResponse) || errors.Is(err, natsgo.ErrNoResponders) {
		// The stream was deleted since, or none captures the subject.
		b.ready.Delete(topic)
		return fmt.Errorf("publish to %s: no JetStream stream stored subject %s (deleted, or none captures it): %w", topic, subject, err)
	}
	return fmt.Errorf("publish to %s (subject %s): %w", topic, subject, err)
}

// Close closes the publishing connection; Broker.Close closes it too.
func (p *publisher) Close() error {
	p.b.conn.Close()
	return nil
}

var (
	_ message.Publisher            = (*publisher)(nil)
	_ message.Subscriber           = (*subscriber)(nil)
	_ message.SubscribeInitializer = (*subscriber)(nil)
)
