package main

import (
	"slices"
	"testing"
	"time"
)

// The cluster figures of issue 10's closing note, on the harness of
// clusterproc_test.go: real processes for the NATS cluster, the sim and
// every node. -benchtime=Nx runs N rounds.

// BenchmarkClusterStartup starts 3 x 64 shards (fixed ranges) at
// max_concurrency 16 with Discord's 5 s window on a fresh bot each round
// (about a minute), and reports the start-up over its minimum, (ceil(192/16)
// - 1) windows plus the handshake (the processes' start to the first READY),
// and over the windows alone.
func BenchmarkClusterStartup(b *testing.B) {
	var ratios, overWindows []float64
	var minimum time.Duration
	for b.Loop() {
		res := clusterStartup(b)
		ratios = append(ratios, res.ratio())
		overWindows = append(overWindows, float64(res.took)/float64(time.Duration(res.slots)*res.window))
		minimum = res.minimum()
	}
	b.ReportMetric(median(ratios), "startup/min")
	b.ReportMetric(slices.Max(ratios), "startup/min-max")
	b.ReportMetric(median(overWindows), "startup/windows")
	b.ReportMetric(minimum.Seconds(), "min-s")
}

// BenchmarkClusterFailover runs the failover bot (3 x 8 shards, balanced,
// lease_ttl 3 s) and, each round, SIGKILLs one node, waits until every
// shard it held is READY on the others (resumed, no identify), and starts it
// again; it reports the time from the SIGKILL to the last of those READYs.
func BenchmarkClusterFailover(b *testing.B) {
	spec := failoverSpec()
	spec.rate = 0
	bot := newClusterBot(b, spec)
	js := bot.jetStream()
	bot.startBalanced(js)
	names := []string{"a", "b", "c"}
	var secs []float64
	i := 0
	for b.Loop() {
		victim := names[i%len(names)]
		i++
		secs = append(secs, bot.killAndTakeOver(b, js, victim).Seconds())
		bot.start(victim, "")
		bot.nodes[victim].waitJoined(b)
		bot.steady(60*time.Second, js)
	}
	b.ReportMetric(median(secs), "failover-s")
	b.ReportMetric(slices.Max(secs), "failover-s-max")
	b.ReportMetric(spec.leaseTTL.Seconds(), "lease-ttl-s")
	bot.termAll(30 * time.Second)
}

// median is the middle of v (the upper one of an even count).
func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}
