package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
)

// TestClusterSurvivesOneServer creates an R3 bucket and an R3 stream on a
// three-server cluster, stops one server, and still writes and reads
// both, then brings the server back.
func TestClusterSurvivesOneServer(t *testing.T) {
	servers := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	js := natstest.JetStream(t, natstest.ClusterURLs(servers), nats.MaxReconnects(-1))
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "leases", Replicas: 3})
	if err != nil {
		t.Fatalf("create R3 bucket: %v", err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}, Replicas: 3})
	if err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	if _, err := kv.Put(ctx, "shard.0", []byte("before")); err != nil {
		t.Fatalf("put before: %v", err)
	}
	if _, err := js.Publish(ctx, "ev.a", []byte("1")); err != nil {
		t.Fatalf("publish before: %v", err)
	}

	servers[0].Shutdown()
	servers[0].WaitForShutdown()
	natstest.WaitClusterReady(t, servers)

	// Retried: the client may still be reconnecting away from n0, and
	// the stream's leader may be moving.
	write := func(what string, f func() error) {
		t.Helper()
		poll.UntilState(t, 30*time.Second, what, func() (bool, string) {
			if err := f(); err != nil {
				return false, err.Error()
			}
			return true, ""
		})
	}
	write("put after", func() error { _, err := kv.Put(ctx, "shard.1", []byte("after")); return err })
	write("publish after", func() error { _, err := js.Publish(ctx, "ev.b", []byte("2")); return err })

	for key, want := range map[string]string{"shard.0": "before", "shard.1": "after"} {
		var got jetstream.KeyValueEntry
		write("get "+key, func() error { var err error; got, err = kv.Get(ctx, key); return err })
		if string(got.Value()) != want {
			t.Errorf("%s = %q, want %q", key, got.Value(), want)
		}
	}
	var info *jetstream.StreamInfo
	write("stream info", func() error { var err error; info, err = st.Info(ctx); return err })
	if info.State.Msgs != 2 {
		t.Errorf("stream holds %d messages, want 2", info.State.Msgs)
	}

	natstest.Restart(t, servers, 0)
	nc := natstest.Connect(t, servers[0].ClientURL())
	js0, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv0, err := js0.KeyValue(ctx, "leases")
	if err != nil {
		t.Fatalf("bucket from restarted n0: %v", err)
	}
	var got jetstream.KeyValueEntry
	write("get from restarted n0", func() error { var err error; got, err = kv0.Get(ctx, "shard.1"); return err })
	if string(got.Value()) != "after" {
		t.Errorf("restarted n0 reads %q, want %q", got.Value(), "after")
	}
}
