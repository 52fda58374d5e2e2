package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/limiter"
	"github.com/shardtop/shardtop/manager"
)

// fakeSnapshots serves a fixed snapshot and counts how often it is taken.
type fakeSnapshots struct {
	snap  manager.Snapshot
	calls atomic.Int64
}

func (f *fakeSnapshots) SnapshotInto(dst *manager.Snapshot) {
	f.calls.Add(1)
	shards := append(dst.Shards[:0], f.snap.Shards...)
	*dst = f.snap
	dst.Shards = shards
}

func fixedSnapshot() manager.Snapshot {
	now := time.Now()
	return manager.Snapshot{
		At: now,
		Shards: []manager.ShardInfo{
			{Key: manager.ShardKey{ID: 0, Count: 2}, State: gateway.StateReady, SmoothedLatency: 42 * time.Millisecond,
				Events: 1234, Reconnects: 3, SequenceGaps: 1},
			{Key: manager.ShardKey{ID: 1, Count: 2}, State: gateway.StateReconnecting, Events: 10},
			{Key: manager.ShardKey{ID: 1, Count: 4}, Role: manager.RoleJoining, State: gateway.StateQueued},
		},
		Limiter: limiter.Snapshot{
			MaxConcurrency: 2,
			Buckets:        []limiter.BucketSnapshot{{Index: 0}, {Index: 1, Waiting: []int{1, 3}}},
			Budget:         limiter.BudgetSnapshot{Known: true, Total: 1000, Remaining: 990, ResetAt: now.Add(time.Hour)},
		},
		MaxConcurrency:    2,
		RecommendedShards: 2,
		Totals:            manager.Totals{Ready: 1, Total: 2, Identifies: 5, Resumes: 7},
	}
}

// gather collects from a registry holding only the collector, keyed by
// metric name then by the label string "k=v,k=v".
func gather(t *testing.T, reg *prometheus.Registry) map[string]map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]map[string]float64)
	for _, f := range fams {
		m := make(map[string]float64)
		for _, mt := range f.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			m[strings.Join(labels, ",")] = value(mt)
		}
		out[f.GetName()] = m
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return -1
}

func TestCollectorReadsOneSnapshotPerScrape(t *testing.T) {
	src := &fakeSnapshots{snap: fixedSnapshot()}
	reg := prometheus.NewPedanticRegistry() // checks descriptions against metrics
	reg.MustRegister(NewCollector(src))
	got := gather(t, reg)
	if n := src.calls.Load(); n != 1 {
		t.Errorf("one scrape took %d snapshots, want 1", n)
	}
	checks := []struct {
		name, labels string
		want         float64
	}{
		{"shardtop_shards", "state=ready", 1},
		{"shardtop_shards", "state=reconnecting", 1},
		{"shardtop_shards", "state=queued", 0}, // the joining shard is not active
		{"shardtop_shards", "state=failed", 0},
		{"shardtop_shard_state", "count=2,role=active,shard=0,state=ready", 1},
		{"shardtop_shard_state", "count=4,role=joining,shard=1,state=queued", 1},
		{"shardtop_shard_latency_seconds", "count=2,shard=0", 0.042},
		{"shardtop_shard_events_total", "count=2,shard=0", 1234},
		{"shardtop_shard_reconnects_total", "count=2,shard=0", 3},
		{"shardtop_shard_sequence_gaps_total", "count=2,shard=0", 1},
		{"shardtop_identify_queue_length", "bucket=0", 0},
		{"shardtop_identify_queue_length", "bucket=1", 2},
		{"shardtop_session_start_remaining", "", 990},
		{"shardtop_session_start_total", "", 1000},
		{"shardtop_shards_ready", "", 1},
		{"shardtop_shards_total", "", 2},
		{"shardtop_max_concurrency", "", 2},
		{"shardtop_identifies_total", "", 5},
		{"shardtop_resumes_total", "", 7},
	}
	for _, c := range checks {
		v, ok := got[c.name][c.labels]
		if !ok || v != c.want {
			t.Errorf("%s{%s} = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if _, ok := got["shardtop_shard_latency_seconds"]["count=2,shard=1"]; ok {
		t.Errorf("latency exported for a shard that never measured one")
	}
	if r := got["shardtop_session_start_reset_seconds"][""]; r < 3500 || r > 3600 {
		t.Errorf("reset seconds %v, want about 3600", r)
	}

	// An unknown budget exports no budget series rather than zeros.
	src.snap.Limiter.Budget = limiter.BudgetSnapshot{}
	got = gather(t, reg)
	if _, ok := got["shardtop_session_start_remaining"]; ok {
		t.Errorf("budget exported while unknown")
	}
	if n := src.calls.Load(); n != 2 {
		t.Errorf("two scrapes took %d snapshots, want 2", n)
	}
}

func TestMetricsServer(t *testing.T) {
	src := &fakeSnapshots{snap: fixedSnapshot()}
	ms, err := Start("127.0.0.1:0", src, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	body := scrape(t, "http://"+ms.Addr().String()+"/metrics")
	for _, want := range []string{
		"# HELP shardtop_identify_queue_length ", `shardtop_identify_queue_length{bucket="1"} 2`,
		`shardtop_shard_events_total{count="2",shard="0"} 1234`, "go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// scrape GETs url as Prometheus would and returns the body of a 200 answer.
func scrape(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, body)
	}
	return string(body)
}

// BenchmarkCollect measures one scrape's collection at 10,000 shards.
func BenchmarkCollect(b *testing.B) {
	snap := fixedSnapshot()
	snap.Shards = make([]manager.ShardInfo, 10000)
	for i := range snap.Shards {
		snap.Shards[i] = manager.ShardInfo{Key: manager.ShardKey{ID: i, Count: 10000}, State: gateway.StateReady,
			SmoothedLatency: time.Millisecond, Events: uint64(i)}
	}
	c := NewCollector(&fakeSnapshots{snap: snap})
	ch := make(chan prometheus.Metric, 1024)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	b.ReportAllocs()
	for b.Loop() {
		c.Collect(ch)
	}
	close(ch)
	<-done
}

// TestMetricsServerNodeLabel: in a cluster every series, the Go runtime's
// too, names the process's node, so one Prometheus tells the nodes apart.
func TestMetricsServerNodeLabel(t *testing.T) {
	src := &fakeSnapshots{snap: fixedSnapshot()}
	ms, err := Start("127.0.0.1:0", src, slog.New(slog.DiscardHandler), WithNode("machine-b"))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	body := scrape(t, "http://"+ms.Addr().String()+"/metrics")
	for _, want := range []string{
		`shardtop_identify_queue_length{bucket="1",node="machine-b"} 2`,
		`shardtop_shard_events_total{count="2",node="machine-b",shard="0"} 1234`,
		`go_goroutines{node="machine-b"} `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
