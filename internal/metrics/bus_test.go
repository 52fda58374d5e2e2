package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
)

// TestBusSeries publishes events on a real bus (an embedded NATS server)
// with a consumer that takes none, and scrapes /metrics: the bus's
// counters, its stream and the consumer's backlog are there, labelled.
func TestBusSeries(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := nats.Connect(srv.ClientURL(), bus.ConnectOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	b, err := bus.New(ctx, nc, bus.WithMode("embedded", srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, bus.DefaultStreamName, jetstream.ConsumerConfig{
		Durable: "workers", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := 1; i <= n; i++ {
		if !b.Take("sess-1", gateway.Dispatch{ShardID: 1, ShardCount: 2, Event: "MESSAGE_CREATE", Seq: int64(i), Data: []byte(`{"id":"1"}`)}) {
			t.Fatalf("event %d refused", i)
		}
	}
	poll.Until(t, poll.Timeout, "the events acknowledged and the consumer's backlog read", func() bool {
		s := b.Stats()
		return s.Acked == n && len(s.Consumers) == 1 && s.Consumers[0].Pending == n && s.Stream.Msgs == n
	})

	reg := prometheus.NewPedanticRegistry() // checks descriptions against metrics
	reg.MustRegister(NewCollector(&fakeSnapshots{snap: fixedSnapshot()}, WithBus(b)))
	got := gather(t, reg)
	checks := []struct {
		name, labels string
		want         float64
	}{
		{"shardtop_bus_connected", "", 1},
		{"shardtop_bus_published_total", "", n},
		{"shardtop_bus_acked_total", "", n},
		{"shardtop_bus_duplicates_total", "", 0},
		{"shardtop_bus_failed_total", "", 0},
		{"shardtop_bus_refused_total", "", 0},
		{"shardtop_bus_lost_events_total", "", 0},
		{"shardtop_bus_in_flight", "", 0},
		{"shardtop_bus_held_shards", "", 0},
		{"shardtop_bus_buffer", "", bus.DefaultMaxPending},
		{"shardtop_bus_stream_messages", "stream=" + bus.DefaultStreamName, n},
		{"shardtop_bus_consumer_pending", "consumer=workers", n},
		{"shardtop_bus_consumer_ack_pending", "consumer=workers", 0},
		{"shardtop_bus_consumer_redelivered", "consumer=workers", 0},
		{"shardtop_bus_shard_in_flight", "count=2,shard=1", 0},
		{"shardtop_bus_shard_held", "count=2,shard=1", 0},
		{"shardtop_bus_shard_lost_events_total", "count=2,shard=1", 0},
	}
	for _, c := range checks {
		v, ok := got[c.name][c.labels]
		if !ok || v != c.want {
			t.Errorf("%s{%s} = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if v := got["shardtop_bus_stream_bytes"]["stream="+bus.DefaultStreamName]; v <= 0 {
		t.Errorf("stream bytes %v", v)
	}

	// The server exports them too.
	ms, err := Start("127.0.0.1:0", &fakeSnapshots{snap: fixedSnapshot()}, slog.New(slog.DiscardHandler), WithBus(b))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ms.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"shardtop_bus_published_total 5\n",
		`shardtop_bus_consumer_pending{consumer="workers"} 5` + "\n",
		`shardtop_bus_stream_messages{stream="SHARDTOP"} 5` + "\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestNoBusNoSeries: without a bus, or with a nil one (the bus is off),
// no shardtop_bus_ series is exported.
func TestNoBusNoSeries(t *testing.T) {
	for name, opts := range map[string][]Option{"none": nil, "nil bus": {WithBus((*bus.Bus)(nil))}, "nil": {WithBus(nil)}} {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(NewCollector(&fakeSnapshots{snap: fixedSnapshot()}, opts...))
		for metric := range gather(t, reg) {
			if strings.HasPrefix(metric, "shardtop_bus_") {
				t.Errorf("%s: %s exported", name, metric)
			}
		}
	}
}
