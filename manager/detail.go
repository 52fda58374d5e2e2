package manager

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/shardtop/shardtop/gateway"
)

// How much of a shard's past the manager keeps for ShardDetail.
const (
	// DetailChanges is how many state changes a shard's detail keeps.
	DetailChanges = 20
	// DetailSamples is how many points of events/s and latency it keeps,
	// one every detailSampleEvery sample intervals (5 minutes by default).
	DetailSamples = 60
	// detailSampleEvery is the sample intervals one point spans.
	detailSampleEvery = 5
)

// StateRecord is one state change of a shard, as its detail keeps it.
type StateRecord struct {
	At       time.Time
	From, To gateway.State
	// Reason is the change's short text; CloseCode the close code
	// involved (0 if none); Err the error's text ("" if none).
	Reason    string
	CloseCode int
	Err       string
}

// Sample is one point of a shard's recent figures.
type Sample struct {
	At time.Time
	// EventsPerSec is the average since the point before.
	EventsPerSec float64
	// Latency is the smoothed heartbeat round trip then (0: none measured).
	Latency time.Duration
}

// ShardDetail is everything the manager knows of one shard: its ShardInfo
// and its recent past. The past (changes and samples) belongs to the shard
// key: a restart or reopen of the shard continues it.
type ShardDetail struct {
	Info ShardInfo
	// Changes are the last DetailChanges state changes, oldest first.
	Changes []StateRecord
	// Events counts the instance's dispatches by name, most first
	// (gateway.OtherEvents for the names Discord did not document).
	Events []gateway.EventCount
	// Samples are the last DetailSamples points of events/s and latency,
	// oldest first, one per SampleEvery; they are taken while someone
	// reads snapshots (a UI, a metrics scrape).
	Samples     []Sample
	SampleEvery time.Duration
}

// track is a shard key's past, shared by the instances of that key. The
// loop writes it (at a state change, at a sample point); ShardDetailInto
// reads it.
type track struct {
	// mu guards changes, cHead, samples and sHead: the loop writes them,
	// any reader's ShardDetailInto copies them. Held for copies only.
	mu      sync.Mutex
	changes []StateRecord // a ring of up to DetailChanges
	cHead   int           // oldest change once the ring is full
	samples []Sample      // a ring of up to DetailSamples, made at the first point
	sHead   int
	// pointEvents is the loop's: the instance's event counter at the last
	// point (reset when a new instance takes the track).
	pointEvents uint64
}

func (t *track) addChange(r StateRecord) {
	t.mu.Lock()
	if len(t.changes) < DetailChanges {
		t.changes = append(t.changes, r)
	} else {
		t.changes[t.cHead] = r
		t.cHead = (t.cHead + 1) % DetailChanges
	}
	t.mu.Unlock()
}

func (t *track) addSample(s Sample) {
	t.mu.Lock()
	if t.samples == nil {
		t.samples = make([]Sample, 0, DetailSamples)
	}
	if len(t.samples) < DetailSamples {
		t.samples = append(t.samples, s)
	} else {
		t.samples[t.sHead] = s
		t.sHead = (t.sHead + 1) % DetailSamples
	}
	t.mu.Unlock()
}

// copyInto appends the changes and samples, oldest first, to dst's.
func (t *track) copyInto(dst *ShardDetail) {
	t.mu.Lock()
	defer t.mu.Unlock()
	dst.Changes = append(dst.Changes, t.changes[t.cHead:]...)
	dst.Changes = append(dst.Changes, t.changes[:t.cHead]...)
	dst.Samples = append(dst.Samples, t.samples[t.sHead:]...)
	dst.Samples = append(dst.Samples, t.samples[:t.sHead]...)
}

// record keeps c in e's past (the loop, at each state change).
func (e *entry) record(from gateway.State, c *gateway.StateChange) {
	r := StateRecord{At: c.At, From: from, To: c.To, Reason: c.Reason, CloseCode: c.CloseCode}
	if c.Err != nil {
		r.Err = c.Err.Error()
	}
	e.track.addChange(r)
}

// samplePoint adds a point to every shard's past: events/s since the last
// point, and latency now. The loop calls it every detailSampleEvery
// sample intervals while snapshots are read.
func (l *loop) samplePoint(now time.Time) {
	dt := now.Sub(l.lastPoint).Seconds()
	l.lastPoint = now
	visit := func(e *entry) {
		events := e.shard.Events()
		var rate float64
		if dt > 0 && events >= e.track.pointEvents {
			rate = float64(events-e.track.pointEvents) / dt
		}
		e.track.pointEvents = events
		e.track.addSample(Sample{At: now, EventsPerSec: rate, Latency: e.shard.Stats().SmoothedLatency})
	}
	for _, e := range l.active {
		visit(e)
	}
	for _, e := range l.others {
		visit(e)
	}
}

// ShardDetailInto fills dst with the detail of the shard key (active,
// joining or retiring), reusing dst's slices; false if no such shard.
func (m *Manager) ShardDetailInto(key ShardKey, dst *ShardDetail) bool {
	v := m.view.Load()
	now := time.Now()
	m.lastRead.Store(now.UnixNano()) // a reader: the samples go on
	i, ok := slices.BinarySearchFunc(v.entries, key, func(e *entry, k ShardKey) int {
		return cmp.Or(cmp.Compare(e.key.ID, k.ID), cmp.Compare(e.key.Count, k.Count))
	})
	dst.Changes, dst.Events, dst.Samples = dst.Changes[:0], dst.Events[:0], dst.Samples[:0]
	dst.SampleEvery = detailSampleEvery * m.cfg.sampleInterval
	if !ok {
		dst.Info = ShardInfo{}
		return false
	}
	e := v.entries[i]
	dst.Info = m.infoFor(v, e, now)
	e.track.copyInto(dst)
	dst.Events = e.shard.EventCounts(dst.Events)
	slices.SortStableFunc(dst.Events, func(a, b gateway.EventCount) int { return cmp.Compare(b.Count, a.Count) })
	return true
}
