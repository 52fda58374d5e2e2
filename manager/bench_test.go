package manager

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/procstat"
	"github.com/shardtop/shardtop/internal/simproc"
	"github.com/shardtop/shardtop/limiter"
	"github.com/shardtop/shardtop/store"
)

// startupMargin and startupLead are the identify margin and lead the
// start-up benchmarks run with; -args -startup.margin=D and -startup.lead=D
// try others.
var (
	startupMargin = flag.Duration("startup.margin", limiter.DefaultMargin, "identify margin of the start-up benchmarks (spent only after an identify without READY)")
	startupLead   = flag.Duration("startup.lead", 25*time.Millisecond, "identify lead of BenchmarkStartup256At16 (0: adaptive, 1 s until a handshake is measured)")
)

// BenchmarkStartup256At16 opens 256 shards at max_concurrency 16 with a
// 50 ms identify window against a simulator in a child process (its own Go
// runtime and scheduler, as Discord is), and reports the time from Open to
// all READY over the theoretical minimum (ratio, with min/median/max over
// the rounds): 15 windows plus one handshake (one shard's GET /gateway/bot +
// dial + Hello + Identify + READY, measured against its own child), and the
// identify violations the simulator counted (arrivals of one bucket less
// than a window apart, from /_sim/stats).
//
// The lead is scaled with the window like every other time here: Discord's
// 5 s window with the shard's 1 s initial lead has only the next slot's
// shards dialing, while a 1 s lead at a 50 ms window dials all 256 at once
// (-startup.lead=0 measures that too).
//
// A bucket's next identify goes a window after the previous one's READY
// (limiter doc), so each slot costs one READY round trip over the window;
// on loopback that is well under a millisecond.
func BenchmarkStartup256At16(b *testing.B) {
	startupBench(b, 256, 16, 50*time.Millisecond, 0, gateway.WithIdentifyLead(*startupLead))
}

// BenchmarkStartup1000At16 is the pacing figure of a large start-up: 1000
// shards at max_concurrency 16 with a 100 ms window, on an idle machine and
// with eight CPU-bound processes beside it (load=8: the shards, the
// simulator and the burners share the machine's CPUs). The goal is no
// identify violation in any round, loaded or not, and on the idle machine
// a start-up within 1.05 x the minimum of (ceil(N/C) - 1) windows (the
// ratio-vs-windows metric; ratio also counts one handshake in).
// -benchtime=10x runs ten start-ups each.
func BenchmarkStartup1000At16(b *testing.B) {
	for _, load := range []int{0, 8} {
		b.Run(fmt.Sprintf("load=%d", load), func(b *testing.B) {
			startupBench(b, 1000, 16, 100*time.Millisecond, load)
		})
	}
}

// startupBench opens n shards at max_concurrency conc with an identify
// window against a child-process simulator, b.N times, with load CPU
// burners beside it, and reports the start-up over its minimum and the
// identify violations.
func startupBench(b *testing.B, n, conc int, window time.Duration, load int, gwOpts ...gateway.Option) {
	slots := time.Duration((n+conc-1)/conc - 1)
	margin := *startupMargin
	handshake := measureHandshake(b)
	windows := slots * window
	minimum := windows + handshake
	// One simulator for all rounds, warm as Discord is: a fresh process
	// per round adds its own start-up stalls (page faults, stack growth, the
	// first GCs) to the first slot's arrivals.
	sim := simproc.Start(b, benchSim(n, conc, window, n))
	defer sim.Close(b)
	simproc.Burn(b, load)
	var violations float64
	var ratios, ratiosWindows []float64
	for b.Loop() {
		b.StopTimer()
		before := sim.Stats(b)
		m, err := New(testToken, WithAPIURL(sim.API), WithIdentifyWindow(window), WithIdentifyMargin(margin),
			WithGatewayOptions(append(fastGateway(), gwOpts...)...))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		b.StartTimer()
		took := openReadyTimed(ctx, b, m)
		b.StopTimer()
		st := sim.Stats(b)
		st.Identifies -= before.Identifies
		st.IdentifyViolations -= before.IdentifyViolations
		if st.Identifies < n {
			b.Fatalf("sim accepted %d identifies, want >= %d", st.Identifies, n)
		}
		ratios = append(ratios, float64(took)/float64(minimum))
		ratiosWindows = append(ratiosWindows, float64(took)/float64(windows))
		violations += float64(st.IdentifyViolations)
		if st.IdentifyViolations > 0 {
			b.Logf("%d identify violations in a start-up of %v", st.IdentifyViolations, took)
		}
		// End the sessions (the simulator keeps no detached ones), then Close.
		endSessions(ctx, m)
		_ = m.Close(ctx)
		cancel()
		// The next round's limiter knows nothing of this one: let the
		// simulator drop every connection, then one window pass, so that no
		// bucket's first identify of the next round follows this round's
		// last within a window (a rule, not synchronisation).
		deadline := time.Now().Add(30 * time.Second)
		for sim.Stats(b).ActiveConnections > 0 {
			if time.Now().After(deadline) {
				b.Fatal("simulator still has connections 30 s after Close")
			}
			<-time.After(5 * time.Millisecond)
		}
		<-time.After(window + margin)
		b.StartTimer()
	}
	median := func(r []float64) float64 { r = slices.Clone(r); slices.Sort(r); return r[len(r)/2] }
	b.ReportMetric(median(ratios), "ratio-median")
	b.ReportMetric(slices.Min(ratios), "ratio-min")
	b.ReportMetric(slices.Max(ratios), "ratio-max")
	b.ReportMetric(median(ratiosWindows), "ratio-vs-windows-median")
	b.ReportMetric(slices.Max(ratiosWindows), "ratio-vs-windows-max")
	b.ReportMetric(violations/float64(b.N), "violations/op")
	b.ReportMetric(float64(minimum)/1e6, "min-ms")
}

// openReadyTimed opens m and waits until every shard is READY, and returns
// how long that took.
func openReadyTimed(ctx context.Context, b *testing.B, m *Manager) time.Duration {
	b.Helper()
	start := time.Now()
	if err := m.Open(ctx); err != nil {
		b.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// measureHandshake is one shard's start-up from GET /gateway/bot to READY
// against a child-process simulator, the best of three.
func measureHandshake(b *testing.B) time.Duration {
	sim := simproc.Start(b, benchSim(1, 1, time.Millisecond, 40))
	defer sim.Close(b)
	var best time.Duration
	for range 3 {
		m, err := New(testToken, WithAPIURL(sim.API), WithIdentifyWindow(0), WithGatewayOptions(fastGateway()...))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d := openReadyTimed(ctx, b, m)
		if best == 0 || d < best {
			best = d
		}
		// End rather than Close: the next round must identify, not resume.
		endSessions(ctx, m)
		_ = m.Close(ctx)
		cancel()
	}
	return best
}

// endSessions ends every shard's session (1000), so that the next round
// identifies rather than resumes.
func endSessions(ctx context.Context, m *Manager) {
	for _, e := range m.view.Load().entries {
		_ = e.shard.End(ctx)
	}
}

// benchSim is the config of a child-process simulator (internal/simproc)
// for the start-up benchmarks: shards recommended, max_concurrency, identify
// window and guilds; a 5 s heartbeat and a budget for many rounds.
func benchSim(shards, conc int, window time.Duration, guilds int) discordsim.Config {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency, cfg.IdentifyWindow, cfg.Guilds = shards, conc, window, guilds
	cfg.HeartbeatInterval = 5 * time.Second
	cfg.SessionStartTotal = 1 << 20 // many rounds against one simulator
	return cfg
}

// BenchmarkSnapshot10000 takes Snapshot of 10,000 shards (built, not
// connected): fresh, and into a reused buffer.
func BenchmarkSnapshot10000(b *testing.B) {
	m := unconnectedManager(b, 10000)
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = m.Snapshot()
		}
	})
	b.Run("reuse", func(b *testing.B) {
		b.ReportAllocs()
		var s Snapshot
		for b.Loop() {
			m.SnapshotInto(&s)
		}
	})
}

func unconnectedManager(b *testing.B, n int) *Manager {
	m, err := New(testToken)
	if err != nil {
		b.Fatal(err)
	}
	// The loop's first state, published as Open would, without starting it.
	l := &loop{m: m, life: stateOpen, active: make(map[int]*entry, n), lim: limiter.New(16), maxConc: 16, gwURL: "ws://127.0.0.1:1"}
	for i := range n {
		l.active[i] = m.newEntry(ShardKey{i, n}, RoleActive, gateway.Session{}, l)
	}
	l.dirty = true
	l.publish()
	b.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// BenchmarkTenThousandShards is a large bot in one process: 10,000 shards
// at max_concurrency 64 with a 20 ms identify window, against a simulator
// in a child process that sends Discord's 41.25 s heartbeat interval and no
// events. It reports the start-up over its minimum ((ceil(N/C) - 1)
// windows), the resident memory each idle READY shard costs (VmRSS of this
// process 3 s after all READY, less the RSS before Open, over 10,000), the
// CPU this process spends idle (getrusage over 30 s, as % of one core per
// 1000 shards), Snapshot's time at 10,000 shards, and a restart on the same
// state file: the time until every shard resumed, and its identifies
// (goal: 0). -benchtime=1x; it takes about a minute.
func BenchmarkTenThousandShards(b *testing.B) {
	const (
		n, conc = 10_000, 64
		window  = 20 * time.Millisecond
		idleFor = 30 * time.Second
	)
	cfg := benchSim(n, conc, window, n)
	cfg.HeartbeatInterval = discordsim.DefaultHeartbeatInterval
	sim := simproc.Start(b, cfg)
	defer sim.Close(b)
	path := filepath.Join(b.TempDir(), "state.toml")
	gw := []gateway.Option{gateway.WithCompression(gateway.CompressionNone), gateway.WithHandshakeTimeout(30 * time.Second)}
	for b.Loop() {
		st, err := store.OpenFile(path)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		rss0 := vmRSS(b)
		m, err := New(testToken, WithAPIURL(sim.API), WithIdentifyWindow(window), WithStore(st), WithGatewayOptions(gw...))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		took := openReadyTimed(ctx, b, m)
		minimum := time.Duration((n+conc-1)/conc-1) * window
		b.ReportMetric(float64(took)/float64(minimum), "startup/min")
		time.Sleep(3 * time.Second) // the measuring point: 3 s after all READY (a measurement, not synchronisation)
		runtime.GC()
		b.ReportMetric(float64(vmRSS(b)-rss0)/n/1024, "KB-RSS/shard")

		stopProfile := startIdleProfile(b)
		user0, sys0 := cpuTime(b)
		time.Sleep(idleFor) // idle: heartbeats only (a measurement, not synchronisation)
		user1, sys1 := cpuTime(b)
		stopProfile()
		idle := (user1 - user0) + (sys1 - sys0)
		b.ReportMetric(100*float64(idle)/float64(idleFor)/(n/1000), "%core-idle/1000shards")
		b.ReportMetric(100*float64(sys1-sys0)/float64(idleFor)/(n/1000), "%core-idle-kernel/1000shards")

		var snap Snapshot
		snapStart := time.Now()
		const snaps = 20
		for range snaps {
			m.SnapshotInto(&snap)
		}
		b.ReportMetric(float64(time.Since(snapStart))/snaps/1e6, "ms/snapshot")
		if err := m.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}

		// The restart: every shard resumes its saved session.
		st, err = store.OpenFile(path)
		if err != nil {
			b.Fatal(err)
		}
		before := sim.Stats(b)
		m, err = New(testToken, WithAPIURL(sim.API), WithIdentifyWindow(window), WithStore(st), WithGatewayOptions(gw...))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(openReadyTimed(ctx, b, m).Seconds(), "s-restart")
		after := sim.Stats(b)
		b.ReportMetric(float64(after.Identifies-before.Identifies), "identifies-restart")
		endSessions(ctx, m)
		_ = m.Close(ctx)
		_ = st.Close()
		cancel()
		_ = os.Remove(path)
	}
}

// idleProfile names a file for a CPU profile of the idle phase alone
// (-args -tenk.idleprofile=FILE): what the bookkeeping costs.
var idleProfile = flag.String("tenk.idleprofile", "", "CPU profile of BenchmarkTenThousandShards' idle phase")

func startIdleProfile(b *testing.B) (stop func()) {
	if *idleProfile == "" {
		return func() {}
	}
	f, err := os.Create(*idleProfile)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// vmRSS is this process's resident set size in bytes (Linux).
func vmRSS(b *testing.B) int64 {
	b.Helper()
	n, err := procstat.RSS(procstat.Self)
	if err != nil {
		b.Skip("no resident set size:", err)
	}
	return n
}

// cpuTime is the user and system (kernel) CPU this process has used.
func cpuTime(b *testing.B) (user, sys time.Duration) {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
