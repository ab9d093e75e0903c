// Package nats is the NATS JetStream broker: generated publishers and routers
// run on JetStream, with the wire format of watermill-nats v2
// (github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats), so that other
// Watermill services read what it publishes and the other way round.
// Publishing and subscribing use nats.go directly: publishes are pipelined
// (see Config.MaxPublishPending), and watermill-nats v2.1.3's subscriber can
// panic when a subscription ends with a message waiting. Import the package
// for its side effect to make runtime.OpenBroker understand nats:// URLs:
//
//	import _ "github.com/protoc-gen-eda/eda/runtime/nats"
//
//	b, err := runtime.OpenBroker(ctx, "nats://127.0.0.1:4222?ack_wait=1m", runtime.BrokerOptions{})
//	if err != nil { ... }
//	defer b.Close()
//	pub, _ := runtime.NewPublisher(b.Publisher, runtime.PublisherConfig{Source: "orders"})
//	router, _ := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher})
//
// or build it in code with New and a Config.
//
// # Topics, streams and subjects
//
// Every topic is a JetStream stream of its own, holding one subject. The
// subject is the topic itself (eda topics such as
// "shop.orders.v1.Order.events" are valid subjects: their dots separate
// tokens), preceded by "PREFIX." when a prefix is set. Stream names cannot
// hold dots, so the stream is named after the subject with every character a
// stream name cannot hold ('.', '*', '>', '/', '\', white space) replaced by
// '_': "shop_orders_v1_Order_events". Two topics that differ only in those
// characters would share a stream name; the second fails to provision with an
// error naming both.
//
// The broker creates a missing stream the first time a topic is published or
// subscribed to (file storage, limits retention: messages are kept until
// max_age, if set, or forever), and never changes an existing one. Create
// streams yourself (with other subjects, retention or replicas) and set
// provision=false: the broker then publishes to whatever stream captures the
// topic's subject.
//
// # Consumer groups
//
// Broker.NewSubscriber(group) subscribes with a durable JetStream consumer
// named after the group (with '.' and the other characters above replaced by
// '_'), delivered to a queue group of the same name. Every subscriber of a
// group, in this process or another, shares the group's messages (competing
// consumers), and every group receives every message of the topic, from the
// start of the stream the first time the group subscribes and from where it
// stopped after that. The router names a handler's group after the handler,
// so renaming a handler makes it a new group that reads the topic from the
// start. NewSubscriber("") subscribes with an ephemeral consumer: each
// subscription receives every message of the stream, and nothing is
// remembered when it ends.
//
// Each subscriber NewSubscriber returns has a connection of its own (a
// router opens one per handler), besides the broker's publishing
// connection. A message the server had sent to a subscriber that stops
// before handling it is redelivered, to another subscriber of the group,
// once ack_wait has passed.
//
// Within one subscription messages arrive in stream order, one at a time
// (unless subscribers > 1). A message not acknowledged within ack_wait is
// redelivered; a negatively acknowledged one at once, but behind the
// messages the server has already sent (up to max_ack_pending): set
// max_ack_pending=1 where a redelivery must not be overtaken. The router
// retries a failing handler in place and acknowledges a message it
// dead-letters, so it negatively acknowledges only when the dead letter
// itself cannot be published.
//
// # Publishing
//
// Publish returns once JetStream has stored the message (a publish
// acknowledgement). Publishing several messages in one call (the outbox relay
// does, per topic) sends them all before waiting for their acknowledgements,
// which is much faster than one by one; they are stored in order. The
// message id (the envelope's id) is sent as the Nats-Msg-Id header, so
// JetStream drops a message published twice within the stream's duplicate
// window (two minutes by default): an outbox relay that publishes again after
// a crash does not duplicate what it had published.
//
// The envelope and all other Watermill metadata travel as NATS headers, with
// the message id in the header _watermill_message_uuid: the wire format of
// watermill-nats' NATSMarshaler, so other Watermill services read the
// messages. Header values cannot hold line breaks; NATS turns them into
// spaces.
//
// # URL
//
//	nats://[user:password@]host[:port][,host2[:port]...][?param=value&...]
//
// Several hosts are servers of one cluster, tried in random order. A user
// without a password is sent as a token. Parameters:
//
//	prefix            namespace for subjects and streams: subject PREFIX.TOPIC, stream PREFIX_TOPIC (with '_' for '.'). Default none.
//	provision         create missing streams (true) or require them to exist (false). Default true.
//	storage           storage of created streams: file or memory. Default file.
//	replicas          replicas of created streams, in a cluster. Default 1.
//	max_age           how long created streams keep messages, a Go duration (720h). Default forever.
//	duplicate_window  how long created streams remember message ids to drop duplicates. Default the server's, 2m.
//	dedup             send the message id as Nats-Msg-Id (true) or not (false). Default true.
//	max_publish_pending  the most messages a publisher has sent without their acknowledgement; a larger Publish waits for room. Default nats.go's, 4000.
//	ack_wait          how long a subscriber's message may stay unacknowledged before it is redelivered. Default 30s.
//	max_ack_pending   the most messages a consumer has delivered but not seen acknowledged. Default the server's, 1000.
//	subscribers       concurrent deliveries per subscription; more than 1 gives up ordering. Default 1.
//	ack_async         acknowledge without waiting for the server's confirmation: faster, but a lost acknowledgement means a redelivery. Default false.
//	connect_timeout   how long to try each server when connecting. Default 5s.
//	name              connection name shown by the server's monitoring. Default none.
//	creds             path of a credentials file (NATS JWT and nkey seed). Default none.
//	tls               require TLS (true). Default false.
//
// Open fails if no server answers within connect_timeout, or if the server
// does not have JetStream enabled.
package nats
