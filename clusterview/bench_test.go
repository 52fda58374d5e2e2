package clusterview

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// bigSource is a 1000-shard snapshot as a busy bot's manager gives it:
// every shard Ready, with counters, a close in its past, some queued.
type bigSource struct{ shards []manager.ShardInfo }

func newBigSource(n int) *bigSource {
	now := time.Now()
	s := &bigSource{}
	for i := range n {
		s.shards = append(s.shards, manager.ShardInfo{
			Key: manager.ShardKey{ID: i, Count: n}, State: gateway.StateReady, Since: now.Add(-time.Hour),
			Latency: 41 * time.Millisecond, SmoothedLatency: 43 * time.Millisecond, Guilds: 1000 + i,
			Events: 12345678, EventsPerSec: 153.25, Sequence: 987654, Bucket: i % 16, QueuePos: -1,
			SessionID: "b84fb46b9fe34aff0b5a111c601e3d1a", ResumeURL: "wss://gateway-us-east1-b.discord.gg",
			Reconnects: 2, LastCloseCode: 4000, LastCloseReason: "shardtop: restart", LastCloseAt: now.Add(-2 * time.Hour),
			Identifies: 1, Resumes: 2, Uptime: 3 * time.Hour, Resumable: true,
		})
	}
	return s
}

func (s *bigSource) SnapshotInto(dst *manager.Snapshot) {
	dst.Shards = append(dst.Shards[:0], s.shards...)
}

func quiet() Option { return WithLogger(slog.New(slog.DiscardHandler)) }

// BenchmarkEncode1000: building and encoding a 1000-shard snapshot.
func BenchmarkEncode1000(b *testing.B) {
	p := &Publisher{node: "n1", src: newBigSource(1000), log: slog.New(slog.DiscardHandler)}
	var snap manager.Snapshot
	var w wireSnapshot
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = p.encode(&snap, &w, buf[:0])
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}

// BenchmarkPublishDecode1000: one 1000-shard snapshot encoded, published
// on a real embedded NATS server, received and decoded into the view.
func BenchmarkPublishDecode1000(b *testing.B) {
	url := natsURL(b)
	pub, sub := connect(b, url), connect(b, url)
	v := newView(b, sub, "watch", nil, quiet())
	if err := v.sub.Unsubscribe(); err != nil { // the benchmark drives the handler itself
		b.Fatal(err)
	}
	got := make(chan *nats.Msg, 1)
	s, err := sub.ChanSubscribe(snapshotSubject(DefaultPrefix, "n1"), got)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Unsubscribe() }()
	if err := sub.Flush(); err != nil {
		b.Fatal(err)
	}
	p := &Publisher{node: "n1", src: newBigSource(1000), log: slog.New(slog.DiscardHandler)}
	var snap manager.Snapshot
	var w wireSnapshot
	var buf, zbuf []byte
	msg := &nats.Msg{Subject: snapshotSubject(DefaultPrefix, "n1"), Header: nats.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		buf = p.encode(&snap, &w, buf[:0])
		zbuf = frame(msg, buf, zbuf)
		if err := pub.PublishMsg(msg); err != nil {
			b.Fatal(err)
		}
		v.handleSnapshot(<-got)
	}
	b.ReportMetric(float64(len(buf)), "json-bytes")
	b.ReportMetric(float64(len(msg.Data)), "wire-bytes")
	var out manager.Snapshot
	v.SnapshotInto(&out)
	if len(out.Shards) != 1000 {
		b.Fatalf("view has %d shards, want 1000", len(out.Shards))
	}
}

// BenchmarkViewSnapshotInto: the TUI's per-tick merge of 4 nodes × 250 shards.
func BenchmarkViewSnapshotInto(b *testing.B) {
	v := &View{self: "watch", nodes: map[string]*remote{}, s: settings{goneAfter: time.Hour}}
	big := newBigSource(1000)
	for n := range 4 {
		r := &remote{lastSeen: time.Now()}
		r.snap.Node = fmt.Sprintf("n%d", n)
		for i := n; i < 1000; i += 4 {
			r.snap.Shards = append(r.snap.Shards, toWire(&big.shards[i]))
		}
		v.nodes[r.snap.Node] = r
	}
	var dst manager.Snapshot
	v.SnapshotInto(&dst)
	b.ReportAllocs()
	for b.Loop() {
		v.SnapshotInto(&dst)
	}
	if len(dst.Shards) != 1000 {
		b.Fatalf("%d shards", len(dst.Shards))
	}
}
