package manager

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/poll"
)

// TestShardDetail follows one shard through a close by Discord and a close
// and reopen by the operator: its detail has the resume URL, the state
// changes with their close codes, the events by name adding up to its
// Events, and events/s and latency samples; a reopen continues its past.
func TestShardDetail(t *testing.T) {
	cfg := simConfig()
	cfg.Shards = 2
	sim := startSim(t, cfg)
	sim.SetEventRate(40)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	openReady(t, m)
	key := ShardKey{1, 2}
	var d ShardDetail
	if m.ShardDetailInto(ShardKey{1, 4}, &d) {
		t.Fatal("a detail for a shard that does not exist")
	}
	if n := sim.CloseShard(1, 4000); n != 1 {
		t.Fatalf("sim closed %d connections", n)
	}
	poll.Until(t, poll.Timeout, "the close, the resume and samples with traffic and latency", func() bool {
		if !m.ShardDetailInto(key, &d) || d.Info.State != gateway.StateReady {
			return false
		}
		var closed bool
		for _, c := range d.Changes {
			closed = closed || (c.To == gateway.StateReconnecting && c.CloseCode == 4000)
		}
		var rate, lat bool
		for _, s := range d.Samples {
			rate, lat = rate || s.EventsPerSec > 0, lat || s.Latency > 0
		}
		return closed && rate && lat && d.Info.Resumes == 1
	})
	if d.Info.Key != key || d.Info.ResumeURL != sim.ResumeURL() || d.Info.SessionID == "" {
		t.Fatalf("info %v: resume URL %q (want %q), session %q", d.Info.Key, d.Info.ResumeURL, sim.ResumeURL(), d.Info.SessionID)
	}
	if first := d.Changes[0]; first.From != gateway.StateIdle || first.At.IsZero() {
		t.Fatalf("first change %+v, want from idle", first)
	}
	if d.SampleEvery != 5*100*time.Millisecond {
		t.Fatalf("SampleEvery %v", d.SampleEvery)
	}
	var sum uint64
	names := map[string]uint64{}
	for i, c := range d.Events {
		sum += c.Count
		names[c.Name] = c.Count
		if i > 0 && c.Count > d.Events[i-1].Count {
			t.Fatalf("events not most first: %v", d.Events)
		}
	}
	// The counts and Info are read one after the other: traffic goes on.
	if names["READY"] != 1 || names["GUILD_CREATE"] == 0 || names["MESSAGE_CREATE"] == 0 || sum < d.Info.Events {
		t.Fatalf("events by name %v (sum %d), Events %d", d.Events, sum, d.Info.Events)
	}
	before := slices.Clone(d.Changes)
	samples := len(d.Samples)

	ctx := ctxT(t, 20*time.Second)
	if err := m.CloseShard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := m.OpenShard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, poll.Timeout, "the reopen in the same past", func() bool {
		m.ShardDetailInto(key, &d)
		return len(d.Changes) > len(before) && d.Changes[len(d.Changes)-1].To == gateway.StateReady
	})
	if !slices.Equal(d.Changes[:len(before)], before) || len(d.Samples) < samples {
		t.Fatalf("the reopened shard lost its past:\nbefore %v\nafter  %v\nsamples %d then %d", before, d.Changes, samples, len(d.Samples))
	}
	var closedByOperator bool
	for _, c := range d.Changes[len(before):] {
		closedByOperator = closedByOperator || (c.From == gateway.StateReady && c.To == gateway.StateClosed && c.CloseCode == 4000)
	}
	if !closedByOperator {
		t.Fatalf("no ready→closed 4000 in %v", d.Changes[len(before):])
	}
}

// TestTrackRings: the past keeps the last DetailChanges changes and
// DetailSamples samples, oldest first.
func TestTrackRings(t *testing.T) {
	var tr track
	n := DetailChanges + 7
	for i := range n {
		tr.addChange(StateRecord{Reason: fmt.Sprint(i)})
	}
	for i := range DetailSamples + 3 {
		tr.addSample(Sample{EventsPerSec: float64(i)})
	}
	var d ShardDetail
	tr.copyInto(&d)
	if len(d.Changes) != DetailChanges || d.Changes[0].Reason != "7" || d.Changes[DetailChanges-1].Reason != fmt.Sprint(n-1) {
		t.Fatalf("changes %v", d.Changes)
	}
	if len(d.Samples) != DetailSamples || d.Samples[0].EventsPerSec != 3 || d.Samples[DetailSamples-1].EventsPerSec != DetailSamples+2 {
		t.Fatalf("samples %v", d.Samples)
	}
}
