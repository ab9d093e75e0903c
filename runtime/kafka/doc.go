// Package kafka is Apache Kafka as a message broker for the runtime, on
// Watermill's Kafka Pub/Sub (watermill-kafka v3, IBM Sarama). Importing it
// registers the kafka:// broker scheme:
//
//	import _ "github.com/protoc-gen-eda/eda/runtime/kafka"
//
//	b, err := runtime.OpenBroker(ctx, "kafka://k1:9092,k2:9092?client_id=orders", runtime.BrokerOptions{})
//	defer b.Close()
//	router, _ := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher})
//
// or with a typed configuration:
//
//	b, err := kafka.New(ctx, kafka.Config{Brokers: []string{"k1:9092"}})
//
// The broker's publisher, NewSubscriber and subscribers are safe for
// concurrent use. Broker.Close closes them all.
//
// Status: this package is compiled and unit-tested (URL parsing, the Sarama
// configuration it builds, the message key and metadata mapping, failing
// fast on an unreachable broker); it has not been tested against a live
// Kafka broker. Try it on a staging cluster before you rely on it.
//
// # URL
//
// kafka://[user:password@]host[:port][,host[:port]...][?params]: one or
// more bootstrap brokers, port 9092 by default. With a user, the client
// authenticates with SASL/PLAIN (use tls=true with it, or the password
// travels in clear). Listing several brokers, give each its port: Go's URL
// parser reads the last colon of the host list as the port's. Parameters,
// all optional:
//
//   - client_id: the client id brokers log and quota by (Config.ClientID);
//     default protoc-gen-eda.
//   - version: the Kafka protocol version to speak, such as 3.6.0
//     (Config.Version); default 2.1.0, the oldest Kafka 4 accepts.
//   - initial_offset: oldest (default) or newest: where a consumer group
//     without a committed offset starts (Config.StartAtNewest). Oldest
//     matches the other brokers: a new handler reads the topic's history.
//   - dial_timeout: how long to wait for a TCP connection to a broker
//     (Config.DialTimeout), a Go duration; default 10s.
//   - resend_interval: how long before a nacked message is delivered
//     again (Config.ResendInterval); default 100ms.
//   - tls: true to connect with TLS, verified against the system's roots.
//   - idempotent: false turns off the idempotent producer
//     (Config.DisableIdempotence), for clusters that deny the
//     IdempotentWrite permission; default true.
//
// An unknown parameter or an invalid value is an error; the password never
// appears in errors.
//
// # Consumer groups, keys and ordering
//
// Broker.NewSubscriber(group) returns a subscriber in the Kafka consumer
// group of that name: the router passes the handler's consumer group (its
// DeliveryPolicy.ConsumerGroup, else its name), so instances of a service
// share a topic's partitions and each group reads every message.
//
// The publisher makes the envelope's partition key (metadata
// eda_partitionkey, else the subject ce_subject, as runtime.Envelope reads
// it) the Kafka message key. Sarama's hash partitioner maps equal keys to
// one partition, and a partition is consumed in order by one member of a
// group, so the messages of one key arrive in order. Messages without a
// key are spread over partitions. Sarama's hash differs from the Java
// client's (murmur2): a Java producer on the same topic may put a key on
// another partition. The producer is idempotent and waits for all in-sync
// replicas (acks=all), so a retried send neither duplicates nor reorders.
//
// The envelope travels as record headers, one per metadata key, next to
// Watermill's message id header; the payload is the record value. Delivery
// is at least once: a handler's ack marks the offset, committed every
// second, so a crash redelivers the last second's messages; consumers
// deduplicate by message id.
package kafka
