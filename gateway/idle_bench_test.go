package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/internal/procstat"
	"github.com/shardtop/shardtop/internal/simproc"
)

// idleClientEnv holds the JSON idleSpec of an idle client child; its
// presence is what makes the test binary one (see runIdleClientIfChild).
const idleClientEnv = "SHARDTOP_GATEWAY_IDLE_CLIENT"

// idleSpec is what an idle client child runs: shards 0..N-1 of Count
// against Gateway, all READY, then Settle, then a CPU window.
type idleSpec struct {
	Gateway     string
	N, Count    int
	Compression Compression
	Settle      time.Duration // from all READY to the RSS reading
	CPUWindow   time.Duration // after the RSS reading, CPU time is measured over this; 0: not measured
	// Profile, when set, is a path prefix: the child writes PREFIX.heap.pprof
	// (every allocation sampled, which itself costs memory: the figures of
	// such a run are off), PREFIX.goroutine.txt and PREFIX.cpu.pprof (the
	// CPU window).
	Profile string
}

// idleResult is what the child measured about itself.
type idleResult struct {
	RSS        int64         // VmRSS (bytes) Settle after all READY
	HeapAlloc  uint64        // runtime.MemStats at the same moment, no GC forced
	HeapSys    uint64        //
	StackInuse uint64        //
	Goroutines int           //
	CPU        time.Duration // user+system CPU over CPUWindow (getrusage RUSAGE_SELF)
	Wall       time.Duration // the CPUWindow as it elapsed
	Heartbeats uint64        // heartbeats the shards sent during it
}

// runIdleClientIfChild must be called in TestMain. When this process is an
// idle client child (started by measureIdle), it runs the idleSpec of its
// environment, prints the idleResult as JSON on stdout and reports isChild
// true with the exit code; otherwise it does nothing.
func runIdleClientIfChild() (exitCode int, isChild bool) {
	raw, ok := os.LookupEnv(idleClientEnv)
	if !ok {
		return 0, false
	}
	var spec idleSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "idle client: bad %s: %v\n", idleClientEnv, err)
		return 2, true
	}
	res, err := runIdleClient(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle client:", err)
		return 1, true
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "idle client:", err)
		return 1, true
	}
	return 0, true
}

func runIdleClient(spec idleSpec) (idleResult, error) {
	var res idleResult
	if spec.Profile != "" {
		runtime.MemProfileRate = 1 // every allocation: the shards' are few and small
	}
	shards := make([]*Shard, spec.N)
	gate := &testGate{} // the simulator's MaxConcurrency covers every shard: no pacing needed
	for i := range shards {
		shards[i] = New(testToken, i, spec.Count, WithURL(spec.Gateway), WithCompression(spec.Compression), WithIdentifyGate(gate))
		if err := shards[i].Start(); err != nil {
			return res, err
		}
	}
	defer func() {
		var wg sync.WaitGroup
		for _, s := range shards {
			wg.Go(func() { _ = s.End(context.Background()) })
		}
		wg.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, s := range shards {
		if err := s.Open(ctx); err != nil {
			return res, fmt.Errorf("shard %d: %w", s.ID(), err)
		}
	}
	time.Sleep(spec.Settle) // the measurement's own wait, as the issue measures: no synchronisation
	rss, err := procstat.RSS(procstat.Self)
	if err != nil {
		return res, err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.RSS, res.HeapAlloc, res.HeapSys, res.StackInuse = rss, ms.HeapAlloc, ms.HeapSys, ms.StackInuse
	res.Goroutines = runtime.NumGoroutine()
	if spec.Profile != "" {
		if err := writeProfile(spec.Profile+".heap.pprof", "heap"); err != nil {
			return res, err
		}
		if err := writeProfile(spec.Profile+".goroutine.txt", "goroutine"); err != nil {
			return res, err
		}
	}
	if spec.CPUWindow > 0 {
		heartbeats := func() (n uint64) {
			for _, s := range shards {
				n += s.Stats().Heartbeats
			}
			return n
		}
		hb0, cpu0, t0 := heartbeats(), cpuTime(), time.Now()
		stopProfile := func() {}
		if spec.Profile != "" {
			f, err := os.Create(spec.Profile + ".cpu.pprof")
			if err != nil {
				return res, err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return res, err
			}
			stopProfile = pprof.StopCPUProfile
		}
		time.Sleep(spec.CPUWindow)
		stopProfile()
		cpu1, t1 := cpuTime(), time.Now() // before counting heartbeats: that costs CPU too
		res.CPU, res.Wall, res.Heartbeats = cpu1-cpu0, t1.Sub(t0), heartbeats()-hb0
	}
	for _, s := range shards {
		if st := s.State(); st != StateReady {
			return res, fmt.Errorf("shard %d left Ready during the measurement: %v", s.ID(), st)
		}
	}
	return res, nil
}

// writeProfile writes the runtime/pprof profile name to path (goroutine
// stacks as text).
func writeProfile(path, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	debug := 0
	if name == "goroutine" {
		debug = 1
	}
	err = pprof.Lookup(name).WriteTo(f, debug)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// idleProfiles is -idle.profiles: a directory where every idle client
// child writes its profiles (see idleSpec.Profile).
var idleProfiles = flag.String("idle.profiles", "", "directory for the profiles of BenchmarkIdleRSS/IdleCPU's client processes (their figures are then off)")

// idleRuns numbers the profiles of the idle client children.
var idleRuns int

// measureIdle runs spec in a fresh child process (this test binary) and
// returns what it measured. A fresh process each time because RSS, once
// grown, stays: a second measurement in the same process would reuse the
// pages the first left behind and look smaller.
func measureIdle(b *testing.B, spec idleSpec) idleResult {
	b.Helper()
	if *idleProfiles != "" {
		idleRuns++
		name := strings.NewReplacer("/", "_", " ", "_").Replace(b.Name())
		spec.Profile = filepath.Join(*idleProfiles, fmt.Sprintf("%s-n%d-%d", name, spec.N, idleRuns))
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), idleClientEnv+"="+string(raw))
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("idle client %+v: %v", spec, err)
	}
	var res idleResult
	line, _ := bufio.NewReader(&stdout).ReadBytes('\n')
	if err := json.Unmarshal(line, &res); err != nil {
		b.Fatalf("idle client printed %q: %v", line, err)
	}
	return res
}

// idleSim is the simulator of the idle benchmarks for count shards: ten
// guilds per shard, Discord's 41.25 s heartbeat, every shard its own
// identify bucket (the measurement is of connected shards, not of start-up).
func idleSim(count int) discordsim.Config {
	return discordsim.Config{
		Shards: count, Guilds: 10 * count, MaxConcurrency: count, IdentifyWindow: time.Millisecond,
		SessionStartTotal: 1 << 20, Seed: 1,
	}
}

// spread reports the minimum, median and maximum of v.
func spread(v []float64) (lo, med, hi float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[0], s[len(s)/2], s[len(s)-1]
}

// BenchmarkIdleRSS measures memory per idle connected shard as issue 8
// does: VmRSS of a client process (a child; the simulator is another) 3 s
// after all of its shards are READY, once with 10 shards and once with 128
// (shards 0..N-1 of 128, ten guilds each), per shard = (RSS128 - RSS10) /
// 118. Each iteration is one fresh process per N; run with -benchtime=3x
// (or more) for the spread. Metrics: rssKB/shard min, med and max over the
// iterations, and the median RSS of each process. GOGC is the
// environment's (the default unless set).
func BenchmarkIdleRSS(b *testing.B) {
	const lo, hi = 10, 128
	for _, comp := range []Compression{CompressionNone, CompressionZlibStream, CompressionZstdStream} {
		b.Run(string(comp), func(b *testing.B) {
			sim := simproc.Start(b, idleSim(hi))
			var per, rssLo, rssHi, heapPer, stackPer []float64
			for b.Loop() {
				spec := idleSpec{Gateway: sim.Gateway, Count: hi, Compression: comp, Settle: 3 * time.Second}
				spec.N = lo
				rl := measureIdle(b, spec)
				spec.N = hi
				rh := measureIdle(b, spec)
				per = append(per, float64(rh.RSS-rl.RSS)/(hi-lo)/1e3)
				heapPer = append(heapPer, float64(int64(rh.HeapAlloc)-int64(rl.HeapAlloc))/(hi-lo)/1e3)
				stackPer = append(stackPer, float64(int64(rh.StackInuse)-int64(rl.StackInuse))/(hi-lo)/1e3)
				rssLo = append(rssLo, float64(rl.RSS)/1e6)
				rssHi = append(rssHi, float64(rh.RSS)/1e6)
			}
			mn, med, mx := spread(per)
			b.ReportMetric(mn, "rssKB/shard-min")
			b.ReportMetric(med, "rssKB/shard-med")
			b.ReportMetric(mx, "rssKB/shard-max")
			_, m, _ := spread(heapPer)
			b.ReportMetric(m, "heapKB/shard-med")
			_, m, _ = spread(stackPer)
			b.ReportMetric(m, "stackKB/shard-med")
			_, m, _ = spread(rssLo)
			b.ReportMetric(m, "rssMB@10-med")
			_, m, _ = spread(rssHi)
			b.ReportMetric(m, "rssMB@128-med")
			b.Logf("rssKB/shard per run: %.1f", per)
		})
	}
}

// BenchmarkIdleCPU measures the CPU idle shards cost: 1000 shards READY in
// a client child process with Discord's 41.25 s heartbeat (the simulator's
// default), then the process's CPU time (getrusage RUSAGE_SELF, user+sys)
// over 60 s, starting 3 s after all READY so that the GUILD_CREATEs are
// done. Metric: cpu%/1000shards, the share of one core per 1000 shards;
// also the heartbeats sent in the window. -benchtime=3x for the spread.
func BenchmarkIdleCPU(b *testing.B) {
	const n = 1000
	sim := simproc.Start(b, idleSim(n))
	var pct []float64
	var beats uint64
	for b.Loop() {
		r := measureIdle(b, idleSpec{
			Gateway: sim.Gateway, N: n, Count: n, Compression: CompressionNone,
			Settle: 3 * time.Second, CPUWindow: 60 * time.Second,
		})
		pct = append(pct, 100*r.CPU.Seconds()/r.Wall.Seconds()*1000/n)
		beats += r.Heartbeats
	}
	mn, med, mx := spread(pct)
	b.ReportMetric(mn, "cpu%/1000shards-min")
	b.ReportMetric(med, "cpu%/1000shards-med")
	b.ReportMetric(mx, "cpu%/1000shards-max")
	b.ReportMetric(float64(beats)/float64(len(pct)), "heartbeats/window")
	b.Logf("cpu%% per 1000 shards per run: %.3f", pct)
}
