package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/internal/filetest"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/internal/procstat"
)

// The bus benchmarks run the shardtop binary headless against a simulator
// in this process, publishing to a NATS server: the nats-server binary
// built from the module ("external", its CPU measured apart) or the one
// shardtop embeds. Their figures are whole-process figures, read from
// /proc: the simulator's work is this process's, not shardtop's.

// busBenchShards is how many shards share a benchmark's events.
const busBenchShards = 4

// procCPU is the CPU time (user + system) of process pid so far.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	d, err := procstat.CPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// procRSS is the resident set of process pid, in bytes.
func procRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	n, err := procstat.RSS(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// busBench is shardtop publishing the simulator's events to a stream.
type busBench struct {
	sim    *discordsim.Server
	p      *proc
	nats   *natsProc // nil: embedded
	url    string
	stream jetstream.Stream
}

// The bus modes of a benchmark's shardtop.
const (
	busExternal = "external" // a nats-server process
	busEmbedded = "embedded"
	busOff      = "off"
)

// startBusBench starts a simulator of shards, NATS (per mode) and
// shardtop headless, uncompressed, and waits for every shard to be Ready
// and the bus up.
func startBusBench(tb testing.TB, shards int, mode string, cfg discordsim.Config) *busBench {
	tb.Helper()
	cfg.Token, cfg.Shards, cfg.MaxConcurrency = e2eToken, shards, shards
	cfg.Guilds = cmp.Or(cfg.Guilds, 4*shards)
	cfg.IdentifyWindow, cfg.HeartbeatInterval, cfg.Seed = 20*time.Millisecond, 41250*time.Millisecond, 1
	sim, err := discordsim.Start(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sim.Close() })
	bb := &busBench{sim: sim}
	dir := tb.TempDir()
	busTable := "[bus]\nlisten = \"127.0.0.1:0\"\n"
	switch mode {
	case busExternal:
		bb.nats = startNATSProc(tb)
		busTable = fmt.Sprintf("[bus]\nmode = \"external\"\nurl = %q\n", bb.nats.url)
	case busOff:
		busTable = "[bus]\nmode = \"off\"\n"
	}
	cfgPath := filetest.Write(tb, dir, "shardtop.toml", fmt.Sprintf(`api_url = %q
token = %q
compression = "none"
identify_window = "20ms"
state_file = "state.toml"
%s`, sim.APIURL(), e2eToken, busTable), 0o600)
	bb.p = startProc(tb, "-config", cfgPath, "--headless", "--log-format", "json")
	if mode == busOff {
		waitAllReady(tb, bb.p, 60*time.Second)
		return bb
	}
	line := waitBusReady(tb, bb.p)
	bb.url, _ = line["url"].(string)
	waitAllReady(tb, bb.p, 60*time.Second)
	nc, err := nats.Connect(bb.url)
	if err != nil {
		tb.Fatalf("connect to the bus at %q: %v", bb.url, err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	bb.stream, err = js.Stream(context.Background(), "SHARDTOP")
	if err != nil {
		tb.Fatal(err)
	}
	return bb
}

// streamMsgs is how many messages the stream holds.
func (bb *busBench) streamMsgs(tb testing.TB) uint64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := bb.stream.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.Msgs
}

// BenchmarkBusPublish: events published to the stream, every one
// acknowledged, per CPU-second of the shardtop process: ~1.3 KB
// MESSAGE_CREATE (the simulator's default variety), uncompressed, in
// bursts of 200,000 over 4 shards. "external" publishes to a nats-server
// process on the same machine (its CPU is reported apart: nats-cpu-s per
// 100k events); "embedded" to the server inside shardtop, whose CPU is
// then shardtop's too. An event counts once the stream holds it.
func BenchmarkBusPublish(b *testing.B) {
	const perShard = 50_000
	for _, mode := range []string{busExternal, busEmbedded} {
		b.Run(mode, func(b *testing.B) {
			bb := startBusBench(b, busBenchShards, mode, discordsim.Config{ReplayBuffer: perShard + 1000})
			var events uint64
			var cpu, natsCPU, wall time.Duration
			b.ResetTimer()
			for range b.N {
				before := bb.streamMsgs(b)
				cpu0, t0 := procCPU(b, bb.p.cmd.Process.Pid), time.Now()
				var nats0 time.Duration
				if bb.nats != nil {
					nats0 = procCPU(b, bb.nats.cmd.Process.Pid)
				}
				for id := range busBenchShards {
					bb.sim.Burst(id, perShard)
				}
				want := before + busBenchShards*perShard
				poll.UntilState(b, 5*time.Minute, "the burst in the stream", func() (bool, string) {
					n := bb.streamMsgs(b)
					return n >= want, fmt.Sprintf("%d of %d", n, want)
				})
				wall += time.Since(t0)
				cpu += procCPU(b, bb.p.cmd.Process.Pid) - cpu0
				if bb.nats != nil {
					natsCPU += procCPU(b, bb.nats.cmd.Process.Pid) - nats0
				}
				events += busBenchShards * perShard
			}
			b.StopTimer()
			e := float64(events)
			b.ReportMetric(e/cpu.Seconds(), "events/cpu-s")
			b.ReportMetric(e/wall.Seconds(), "events/s")
			if bb.nats != nil {
				b.ReportMetric(natsCPU.Seconds()/e*1e5, "nats-cpu-s/100k")
			}
			b.ReportMetric(float64(wall.Nanoseconds())/e, "ns/op")
		})
	}
}

// BenchmarkBusLatency: from shardtop's receipt of a frame (the event's
// Shardtop-Received header) to a consumer's receipt (an ordered push
// consumer in this process, on the same clock), at 10,000 events/s over 4
// shards for 10 s per round, external nats-server. Reports p50 and p99.
func BenchmarkBusLatency(b *testing.B) {
	const rate, round = 10_000, 10 * time.Second
	bb := startBusBench(b, busBenchShards, busExternal, discordsim.Config{})
	nc, err := nats.Connect(bb.url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var lat []time.Duration
	var measuring bool
	cons, err := js.OrderedConsumer(context.Background(), "SHARDTOP", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"shardtop.ev.MESSAGE_CREATE.>"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		at, err := time.Parse(time.RFC3339Nano, m.Headers().Get(bus.HeaderReceived))
		if err != nil {
			return
		}
		mu.Lock()
		if measuring {
			lat = append(lat, now.Sub(at))
		}
		mu.Unlock()
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	b.ResetTimer()
	for range b.N {
		bb.sim.SetEventRate(rate / busBenchShards)
		time.Sleep(2 * time.Second) // settle: a rate, not a start-up, is measured
		mu.Lock()
		measuring = true
		mu.Unlock()
		time.Sleep(round)
		mu.Lock()
		measuring = false
		mu.Unlock()
		bb.sim.SetEventRate(0)
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		b.Fatal("no events measured")
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	b.ReportMetric(float64(len(lat))/(round.Seconds()*float64(b.N)), "events/s")
}

// BenchmarkBusIdleRSS: memory per idle connected shard of the whole
// shardtop process, with the bus embedded (the default) and off: the RSS
// growth from 10 to 128 shards, 3 s after all are READY, per added shard
// (issue 6's method), uncompressed. The difference is the bus's share.
func BenchmarkBusIdleRSS(b *testing.B) {
	for _, mode := range []string{busEmbedded, busOff} {
		b.Run("bus="+mode, func(b *testing.B) {
			var per []float64
			for range b.N {
				rss := map[int]int64{}
				for _, n := range []int{10, 128} {
					bb := startBusBench(b, n, mode, discordsim.Config{Guilds: n})
					time.Sleep(3 * time.Second) // the method: RSS 3 s after all READY
					rss[n] = procRSS(b, bb.p.cmd.Process.Pid)
					bb.p.signal(b, os.Interrupt)
					<-bb.p.done
				}
				per = append(per, float64(rss[128]-rss[10])/118)
			}
			slices.Sort(per)
			b.ReportMetric(per[len(per)/2]/1024, "KB/shard")
			b.ReportMetric(per[0]/1024, "min-KB/shard")
			b.ReportMetric(per[len(per)-1]/1024, "max-KB/shard")
		})
	}
}
