package runtime_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/brokertest"
)

func TestOpenBrokerMem(t *testing.T) {
	ctx := context.Background()
	b, err := runtime.OpenBroker(ctx, "mem://?max_queued=8", runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sub, err := b.NewSubscriber("group")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher.Publish("t", message.NewMessage("1", []byte("hello"))); err != nil {
		t.Fatal(err)
	}
	m := <-msgs
	m.Ack()
	if string(m.Payload) != "hello" {
		t.Errorf("payload %q", m.Payload)
	}
}

func TestOpenBrokerErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct{ url, want string }{
		{"nats://127.0.0.1:4222", `import _ "github.com/protoc-gen-eda/eda/runtime/nats"`},
		{"carrier-pigeon://coop", `unknown broker scheme "carrier-pigeon"`},
		{"mem://?max_queued=lots", "max_queued"},
		{"mem://?fast=1", `no parameter "fast"`},
		{"amqp://guest:secret@127.0.0.1:5672/", "amqp://guest:xxxxx@"},
		{"amqp://guest:secret@127.0.0.1:port/", "invalid port"},
	}
	for _, tt := range tests {
		_, err := runtime.OpenBroker(ctx, tt.url, runtime.BrokerOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("OpenBroker(%q) = %v, want an error containing %q", tt.url, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("OpenBroker(%q) error shows the password: %v", tt.url, err)
		}
		if strings.Contains(tt.url, "carrier") && !errors.Is(err, runtime.ErrUnknownBroker) {
			t.Errorf("OpenBroker(%q): not ErrUnknownBroker", tt.url)
		}
	}
}

func TestRegisterBroker(t *testing.T) {
	opened := ""
	runtime.RegisterBroker("test-broker", func(_ context.Context, u *url.URL, _ runtime.BrokerOptions) (*runtime.Broker, error) {
		opened = u.Host
		return &runtime.Broker{}, nil
	})
	if _, err := runtime.OpenBroker(context.Background(), "test-broker://here", runtime.BrokerOptions{}); err != nil || opened != "here" {
		t.Errorf("OpenBroker of a registered scheme: %v, opened %q", err, opened)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a scheme twice did not panic")
		}
	}()
	runtime.RegisterBroker("test-broker", func(context.Context, *url.URL, runtime.BrokerOptions) (*runtime.Broker, error) { return nil, nil })
}

// TestRouterLeavesSharedMemBus stops a router on mem://: the bus it shares
// with the publisher stays open.
func TestRouterLeavesSharedMemBus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b, err := runtime.OpenBroker(ctx, "mem://", runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher})
	if err != nil {
		t.Fatal(err)
	}
	typ := &runtime.MessageType{Name: "t.Pinged", Version: 1, Topic: "t.pings"}
	if err := router.AddHandler(runtime.HandlerSpec{Name: "h", Topic: typ.Topic, Routes: []runtime.Route{
		runtime.On(typ, func(context.Context, *emptypb.Empty) error { return nil }),
	}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- router.Run(ctx) }()
	<-router.Running()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher.Publish("t.pings", message.NewMessage("1", nil)); err != nil {
		t.Errorf("publish after the router stopped: %v", err)
	}
}

// TestOrderedConcurrencyMem checks ordered concurrency on the embedded bus,
// whose subscriber delivers ahead.
func TestOrderedConcurrencyMem(t *testing.T) {
	brokertest.OrderedConcurrency(t, "mem://", "mem")
}
