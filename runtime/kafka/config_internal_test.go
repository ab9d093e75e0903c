package kafka

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func TestProducerConfig(t *testing.T) {
	cfg := Config{Brokers: []string{"k:9092"}, Username: "app", Password: "pw", TLS: nil}
	cfg.setDefaults()
	s, err := cfg.producerConfig()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"returns successes (SyncProducer)", s.Producer.Return.Successes},
		{"idempotent", s.Producer.Idempotent},
		{"one open request (idempotence)", s.Net.MaxOpenRequests == 1},
		{"acks=all", s.Producer.RequiredAcks == sarama.WaitForAll},
		{"retries", s.Producer.Retry.Max == producerRetries},
		{"hash partitioner", s.Producer.Partitioner != nil && s.Producer.Partitioner("t").RequiresConsistency()},
		{"default version", s.Version == DefaultVersion},
		{"default client id", s.ClientID == DefaultClientID},
		{"dial timeout", s.Net.DialTimeout == DefaultDialTimeout},
		{"short metadata backoff", s.Metadata.Retry.Backoff == metadataBackoff && s.Metadata.Retry.Max == metadataRetries},
		{"SASL/PLAIN", s.Net.SASL.Enable && s.Net.SASL.Mechanism == sarama.SASLTypePlaintext && s.Net.SASL.User == "app" && s.Net.SASL.Password == "pw"},
		{"no TLS unless asked", !s.Net.TLS.Enable},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("producer config: not %s", c.name)
		}
	}

	cfg.DisableIdempotence = true
	if s, err := cfg.producerConfig(); err != nil || s.Producer.Idempotent {
		t.Errorf("DisableIdempotence: idempotent %v, err %v", s != nil && s.Producer.Idempotent, err)
	}
}

func TestConsumerConfig(t *testing.T) {
	cfg := Config{Brokers: []string{"k:9092"}, ClientID: "orders", Version: sarama.V3_6_0_0, DialTimeout: time.Second}
	cfg.setDefaults()
	s, err := cfg.consumerConfig()
	if err != nil {
		t.Fatal(err)
	}
	if s.Consumer.Offsets.Initial != sarama.OffsetOldest || !s.Consumer.Return.Errors {
		t.Errorf("consumer config: initial offset %d, return errors %v; want oldest and true", s.Consumer.Offsets.Initial, s.Consumer.Return.Errors)
	}
	if s.ClientID != "orders" || s.Version != sarama.V3_6_0_0 || s.Net.DialTimeout != time.Second {
		t.Errorf("consumer config: client id %q, version %s, dial timeout %s", s.ClientID, s.Version, s.Net.DialTimeout)
	}
	cfg.StartAtNewest = true
	if s, _ := cfg.consumerConfig(); s.Consumer.Offsets.Initial != sarama.OffsetNewest {
		t.Errorf("StartAtNewest: initial offset %d", s.Consumer.Offsets.Initial)
	}
}

func TestTuneIsValidated(t *testing.T) {
	cfg := Config{Brokers: []string{"k:9092"}, Tune: func(s *sarama.Config) {
		s.Producer.Compression = sarama.CompressionZSTD
		s.Producer.RequiredAcks = sarama.WaitForLocal // contradicts idempotence
	}}
	cfg.setDefaults()
	if _, err := cfg.producerConfig(); err == nil {
		t.Error("a Tune that breaks idempotence passed validation")
	}
	cfg.Tune = func(s *sarama.Config) { s.Producer.Compression = sarama.CompressionZSTD }
	if s, err := cfg.producerConfig(); err != nil || s.Producer.Compression != sarama.CompressionZSTD {
		t.Errorf("Tune not applied: %v", err)
	}
}
