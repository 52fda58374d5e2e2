package limiter

import (
	"context"
	"sync/atomic"
	"testing"
)

// BenchmarkApproachAcquireRelease is one shard's whole turn with a zero
// window: the limiter's own cost, without waiting.
func BenchmarkApproachAcquireRelease(b *testing.B) {
	l := New(1, WithWindow(0), WithMargin(0))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		tk, err := l.Enqueue(0)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Approach(ctx, tk, 0); err != nil {
			b.Fatal(err)
		}
		if err := l.Acquire(ctx, tk); err != nil {
			b.Fatal(err)
		}
		l.Release(tk, true)
	}
}

// BenchmarkApproachAcquireReleaseParallel runs turns from all Ps at once, one
// shard and one bucket per goroutine: the cost of contention on the lock.
func BenchmarkApproachAcquireReleaseParallel(b *testing.B) {
	l := New(1024, WithWindow(0), WithMargin(0))
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := int(next.Add(1))
		for pb.Next() {
			tk, err := l.Enqueue(id)
			if err != nil {
				b.Error(err)
				return
			}
			if err := l.Approach(ctx, tk, 0); err != nil {
				b.Error(err)
				return
			}
			if err := l.Acquire(ctx, tk); err != nil {
				b.Error(err)
				return
			}
			l.Release(tk, true)
		}
	})
}

func queued10k() (*Limiter, []uint64) {
	l := New(16)
	tickets := make([]uint64, 10_000)
	for i := range tickets {
		tickets[i], _ = l.Enqueue(i)
	}
	return l, tickets
}

// BenchmarkSnapshot10k copies the state with 10,000 queued shards.
func BenchmarkSnapshot10k(b *testing.B) {
	l, _ := queued10k()
	b.ReportAllocs()
	for b.Loop() {
		if s := l.Snapshot(); s.Waiting != 10_000 {
			b.Fatal(s.Waiting)
		}
	}
}

// BenchmarkPosition10k looks up one shard's place among 10,000 queued.
func BenchmarkPosition10k(b *testing.B) {
	l, tickets := queued10k()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, ok := l.Position(tickets[i%10_000]); !ok {
			b.Fatal(i)
		}
		i++
	}
}
