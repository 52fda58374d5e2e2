package sharedlimiter

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
)

// BenchmarkBucketOps measures bucket operations against a real embedded
// server: raw is one claim (compare-and-set with TTL) and one release
// (compare-and-set) of a bucket key, what the KV sustains; identify is a
// whole Enqueue/Acquire/Release turn of a Limiter with a zero window
// (claim, read-back, waiters key, outcome, and the watch delivery the next
// claim waits for).
func BenchmarkBucketOps(b *testing.B) {
	b.Run("single", func(b *testing.B) { benchBucketOps(b, natstest.Start(b).ClientURL(), 1) })
	b.Run("cluster-R3", func(b *testing.B) { benchBucketOps(b, startCluster(b, 3), 3) })
}

func benchBucketOps(b *testing.B, url string, replicas int) {
	js := natstest.JetStream(b, url)
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	l, err := New(ctx, js, 1, WithWindow(0), WithMargin(0), WithReplicas(replicas))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.Run("raw", func(b *testing.B) {
		held, _ := json.Marshal(bucketVal{State: stateHeld, Node: "bench"})
		free, _ := json.Marshal(bucketVal{State: stateFree, Node: "bench", Ready: true})
		key := "b.bench"
		var rev uint64 // the key's last revision, from an earlier run if any
		ctx := context.Background()
		if e, err := l.kv.Get(ctx, key); err == nil {
			rev = e.Revision()
		}
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			r, err := l.publish(ctx, key, held, rev, l.holdLimit)
			if err != nil {
				b.Fatal(err)
			}
			if rev, err = l.publish(ctx, key, free, r, 0); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "claim+release/s")
	})
	b.Run("identify", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			tk, _ := l.Enqueue(0)
			if err := l.Acquire(ctx, tk); err != nil {
				b.Fatal(err)
			}
			l.Release(tk, true)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "identifies/s")
	})
}
