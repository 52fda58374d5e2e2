package gateway

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/internal/simproc"
)

// benchSim is the simulator BenchmarkDispatch and BenchmarkIdleMemory run
// against, in a child process (internal/simproc).
var benchSim = discordsim.Config{
	Shards: 1, Guilds: 100, MaxConcurrency: 256, IdentifyWindow: time.Millisecond,
	SessionStartTotal: 1 << 20, ReplayBuffer: 1000, Seed: 1,
}

// cpuTime is the CPU time (user+system) of this process, getrusage.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchBurst is how many events BenchmarkDispatch asks for per burst. The
// simulator prepares a burst in chunks of up to 65536 events or 32 MiB of
// frames before sending them back to back; 16384 events of ~1.3 KB (~21 MB
// uncompressed) fit one chunk, so no simulator work falls inside a burst's
// receipt interval.
const benchBurst = 16384

// receipt times bursts at the dispatch handler: from the first event of a
// burst to its last, wall clock and the client process's CPU time. The
// handler's fields are written on the shard's goroutine and read by the
// benchmark only after done.
type receipt struct {
	size, left atomic.Int64 // events of the armed burst; still to come (0: none expected)
	stray      atomic.Int64 // events outside any armed burst
	done       chan struct{}

	t0, t1     time.Time
	cpu0, cpu1 time.Duration
	bytes      int64 // decompressed payload bytes of events 2..n
}

// arm expects a burst of n events.
func (r *receipt) arm(n int64) {
	r.size.Store(n)
	r.left.Store(n)
}

func (r *receipt) handle(d Dispatch) {
	left := r.left.Load()
	if left <= 0 {
		r.stray.Add(1)
		return
	}
	if left == r.size.Load() {
		r.t0, r.cpu0, r.bytes = time.Now(), cpuTime(), 0
	} else {
		r.bytes += int64(payloadLen(d))
	}
	if left == 1 {
		r.t1, r.cpu1 = time.Now(), cpuTime()
	}
	if r.left.Add(-1) == 0 {
		r.done <- struct{}{}
	}
}

// payloadLen is the size of the decompressed payload d came in: the client
// hands out only d, so the envelope is counted as the simulator renders it,
// {"t":"NAME","s":SEQ,"op":0,"d":...}.
func payloadLen(d Dispatch) int {
	digits := 1
	for v := d.Seq; v >= 10; v /= 10 {
		digits++
	}
	return len(`{"t":"`) + len(d.Event) + len(`","s":`) + digits + len(`,"op":0,"d":`) + len(d.Data) + len(`}`)
}

// BenchmarkDispatch: one connection's dispatch throughput on realistic,
// varied ~1.3 KB MESSAGE_CREATE (the simulator's default MessageVariety),
// sent by the child-process simulator in bursts of benchBurst.
//
// Only the receipt interval of each burst counts, from the handler seeing its
// first event to its last (n-1 events): the simulator compresses a burst
// before sending it, and the client's idle wait for that is excluded from the
// wall time and from the CPU time alike. Metrics: ns/op (wall per event over
// receipt), events/s (wall over receipt), events/cpu-s (events per
// second of client process CPU, getrusage, over receipt), MB/s (decompressed
// payload over receipt) and client-cpu% (client CPU / receipt wall: 100 means
// one core kept busy). allocs/op and B/op are the built-in figures over the
// whole run, bursts' HTTP triggers and idle waits included: an upper bound.
func BenchmarkDispatch(b *testing.B) {
	for _, comp := range []Compression{CompressionNone, CompressionZlibStream, CompressionZstdStream} {
		b.Run(string(comp), func(b *testing.B) {
			sim := simproc.Start(b, benchSim)
			r := &receipt{done: make(chan struct{}, 1)}
			s := New(testToken, 0, 1, WithURL(sim.Gateway), WithCompression(comp), WithIdentifyGate(&testGate{}),
				WithDispatchHandler(func(d Dispatch) {
					if d.Event == "MESSAGE_CREATE" {
						r.handle(d)
					}
				}))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.Open(ctx); err != nil {
				b.Fatal(err)
			}
			defer func() { _, _ = s.Close(context.Background()) }()
			for s.Stats().Guilds < 100 {
				time.Sleep(time.Millisecond)
			}
			var events int64 // counted: n-1 per burst
			var wall, cpu time.Duration
			var payload int64
			b.ReportAllocs()
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				n := min(benchBurst, b.N-sent)
				r.arm(int64(n))
				sim.Post(b, fmt.Sprintf("/_sim/burst?shard=0&n=%d", n))
				select {
				case <-r.done:
				case <-time.After(60 * time.Second):
					b.Fatalf("burst stalled at %d/%d", int64(n)-r.left.Load(), n)
				}
				sent += n
				events += int64(n - 1)
				wall += r.t1.Sub(r.t0)
				cpu += r.cpu1 - r.cpu0
				payload += r.bytes
			}
			b.StopTimer()
			if g := s.Stats().SequenceGaps; g != 0 {
				b.Fatalf("%d gaps", g)
			}
			if k := r.stray.Load(); k != 0 {
				b.Fatalf("%d MESSAGE_CREATE outside the bursts", k)
			}
			if events == 0 || wall <= 0 || cpu <= 0 {
				return // b.N too small to time a receipt interval
			}
			e := float64(events)
			b.ReportMetric(float64(wall.Nanoseconds())/e, "ns/op")
			b.ReportMetric(e/wall.Seconds(), "events/s")
			b.ReportMetric(e/cpu.Seconds(), "events/cpu-s")
			b.ReportMetric(float64(payload)/wall.Seconds()/1e6, "MB/s")
			b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "client-cpu%")
		})
	}
}

// BenchmarkDecode isolates parsing: pre-recorded frames through the
// decompressor and envelope scanner, no websocket.
func BenchmarkDecode(b *testing.B) {
	payloads := samplePayloads(1024)
	var size int
	for _, p := range payloads {
		size += len(p)
	}
	for _, comp := range []Compression{CompressionNone, CompressionZlibStream, CompressionZstdStream} {
		b.Run(string(comp), func(b *testing.B) {
			var msgs [][]byte
			switch comp {
			case CompressionNone:
				msgs = payloads
			case CompressionZlibStream:
				msgs = recordZlib(b, payloads)
			case CompressionZstdStream:
				msgs = recordZstd(b, payloads)
			}
			b.SetBytes(int64(size / len(payloads)))
			b.ReportAllocs()
			var infl inflater
			out := make([]byte, 0, 8<<10)
			var e envelope
			for i := 0; b.Loop(); i++ {
				if i%len(msgs) == 0 { // the recorded stream starts over: new decoder context
					if infl != nil {
						infl.release()
					}
					infl, _ = newInflater(comp, DefaultReadLimit, DefaultZstdMaxWindow)
				}
				p := msgs[i%len(msgs)]
				if infl != nil {
					var err error
					out, _, err = infl.decode(p, out[:0])
					if err != nil {
						b.Fatal(err)
					}
					p = out
				}
				if err := scanEnvelope(p, &e); err != nil || func() string { n, _ := eventName(e.t); return n }() != "MESSAGE_CREATE" {
					b.Fatal(err)
				}
			}
			if infl != nil {
				infl.release()
			}
		})
	}
}

// BenchmarkIdleMemory: heap held per idle connected shard (READY and its
// GUILD_CREATEs done), per compression.
func BenchmarkIdleMemory(b *testing.B) {
	const n = 64
	for _, comp := range []Compression{CompressionNone, CompressionZlibStream, CompressionZstdStream} {
		b.Run(string(comp), func(b *testing.B) {
			sim := simproc.Start(b, benchSim)
			for b.Loop() {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&m0)
				shards := make([]*Shard, n)
				for i := range shards {
					shards[i] = New(testToken, i, n, WithURL(sim.Gateway), WithCompression(comp), WithIdentifyGate(&testGate{}))
					if err := shards[i].Start(); err != nil {
						b.Fatal(err)
					}
				}
				for _, s := range shards {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					err := s.Open(ctx)
					cancel()
					if err != nil {
						b.Fatal(err)
					}
				}
				time.Sleep(200 * time.Millisecond) // let GUILD_CREATEs drain (measurement, not synchronisation)
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&m1)
				b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/n, "heapB/shard")
				b.ReportMetric(float64(int64(m1.StackInuse)-int64(m0.StackInuse))/n, "stackB/shard")
				for _, s := range shards {
					_, _ = s.Close(context.Background())
				}
			}
		})
	}
}
