package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
)

// simChildEnv makes the test binary run only a simulator (see TestMain), so
// benchmarks measure the client's CPU and memory alone.
const simChildEnv = "GATEWAY_BENCH_SIM_CHILD"

func runSimChild() int {
	sim, err := discordsim.Start(discordsim.Config{
		Shards: 1, Guilds: 100, MaxConcurrency: 256, IdentifyWindow: time.Millisecond,
		SessionStartTotal: 1 << 20, ReplayBuffer: 1000, Seed: 1,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		return 1
	}
	fmt.Printf("%s http://%s\n", sim.GatewayURL(), sim.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // run until the parent closes stdin
	_ = sim.Close()
	return 0
}

type simChild struct {
	gateway, base string
	cmd           *exec.Cmd
	stdin         io.Closer
}

func startSimChild(b *testing.B) *simChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), simChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(line)
	c := &simChild{gateway: f[0], base: f[1], cmd: cmd, stdin: stdin}
	b.Cleanup(func() {
		_ = c.stdin.Close()
		_ = c.cmd.Wait()
	})
	return c
}

func (c *simChild) post(b *testing.B, path string) {
	resp, err := http.Post(c.base+path, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: HTTP %d", path, resp.StatusCode)
	}
}

// procCPU is the CPU time of another process (the simulator), from /proc.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ut, st int64
	_, _ = fmt.Sscan(f[11], &ut)
	_, _ = fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDispatch: one connection's dispatch throughput, ~1 KB
// MESSAGE_CREATE, from the child-process simulator's burst.
func BenchmarkDispatch(b *testing.B) {
	for _, comp := range []Compression{CompressionNone, CompressionZlibStream, CompressionZstdStream} {
		b.Run(string(comp), func(b *testing.B) {
			sim := startSimChild(b)
			var events, bytes, target atomic.Int64
			target.Store(-1)
			reached := make(chan struct{}, 1)
			s := New(testToken, 0, 1, WithURL(sim.gateway), WithCompression(comp), WithIdentifyGate(&testGate{}),
				WithDispatchHandler(func(d Dispatch) {
					if events.Add(1) == target.Load() {
						reached <- struct{}{}
					}
					bytes.Add(int64(len(d.Data)))
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
			base, baseBytes := events.Load(), bytes.Load()
			target.Store(base + int64(b.N))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, simCPU0, t0 := cpuTime(), procCPU(sim.cmd.Process.Pid), time.Now()
			sim.post(b, fmt.Sprintf("/_sim/burst?shard=0&n=%d", b.N))
			select {
			case <-reached:
			case <-time.After(60 * time.Second):
				b.Fatalf("burst stalled at %d/%d", events.Load()-base, b.N)
			}
			wall, cpu, simCPU := time.Since(t0), cpuTime()-cpu0, procCPU(sim.cmd.Process.Pid)-simCPU0
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(n/wall.Seconds(), "events/s")
			b.ReportMetric(n/cpu.Seconds(), "events/cpu-s")
			b.ReportMetric(float64(bytes.Load()-baseBytes)/wall.Seconds()/1e6, "MB/s")
			b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "client-cpu%")
			b.ReportMetric(100*simCPU.Seconds()/wall.Seconds(), "sim-cpu%")
			if g := s.Stats().SequenceGaps; g != 0 {
				b.Fatalf("%d gaps", g)
			}
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
				if err := scanEnvelope(p, &e); err != nil || eventName(e.t) != "MESSAGE_CREATE" {
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
			sim := startSimChild(b)
			for b.Loop() {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&m0)
				shards := make([]*Shard, n)
				for i := range shards {
					shards[i] = New(testToken, i, n, WithURL(sim.gateway), WithCompression(comp), WithIdentifyGate(&testGate{}))
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
