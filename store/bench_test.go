package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// benchStates is n realistic records (Discord session IDs are 32 hex chars).
func benchStates(n int) []ShardState {
	out := make([]ShardState, n)
	for i := range out {
		out[i] = ShardState{
			ShardID: i, ShardCount: n,
			SessionID: fmt.Sprintf("%032x", i*7919),
			Sequence:  int64(i) * 1000,
			ResumeURL: "wss://gateway-us-east1-b.discord.gg",
			UpdatedAt: time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC),
		}
	}
	return out
}

// BenchmarkFlush10k is one full write of 10,000 shards to a real file:
// encode, temp file, write, fsync, rename, directory fsync.
func BenchmarkFlush10k(b *testing.B) {
	const n = 10_000
	path := statePathB(b)
	f, err := OpenFile(path, WithFlushInterval(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	states := benchStates(n)
	for _, s := range states {
		if err := f.Put(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := f.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	s := states[0]
	for b.Loop() {
		s.Sequence++
		if err := f.Put(s); err != nil { // make it dirty
			b.Fatal(err)
		}
		if err := f.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fi.Size()), "file-bytes")
}

// BenchmarkEncode10k is the CPU part of a flush, without the file system.
func BenchmarkEncode10k(b *testing.B) {
	states := benchStates(10_000)
	var buf bytes.Buffer
	var docs []shardDoc
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		var err error
		if docs, err = encode(&buf, states, bucketTimes{}, docs); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

// BenchmarkOpen10k reads and validates a 10,000-shard file (lock included).
func BenchmarkOpen10k(b *testing.B) {
	path := statePathB(b)
	f, err := OpenFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range benchStates(10_000) {
		if err := f.Put(s); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		g, err := OpenFile(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := g.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPut is the per-event cost the manager pays (a sequence update).
func BenchmarkPut(b *testing.B) {
	f, err := OpenFile(statePathB(b), WithFlushInterval(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := benchStates(1)[0]
	b.ReportAllocs()
	for b.Loop() {
		s.Sequence++
		if err := f.Put(s); err != nil {
			b.Fatal(err)
		}
	}
}

func statePathB(b *testing.B) string {
	return b.TempDir() + "/state.toml"
}
