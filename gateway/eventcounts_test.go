package gateway

import (
	"slices"
	"testing"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/internal/poll"
)

// TestEventCountsByName counts a real session's dispatches by name: the
// READY, one GUILD_CREATE per guild and a burst of MESSAGE_CREATE, which
// add up to Events; Stats carries the session's resume URL.
func TestEventCountsByName(t *testing.T) {
	sim := startSim(t, discordsim.Config{Guilds: 7})
	ts := newShard(t, sim)
	ts.open(t)
	poll.Until(t, poll.Timeout, "the GUILD_CREATEs", func() bool { return ts.Stats().Guilds == 7 })
	if n := sim.Burst(0, 40); n != 1 {
		t.Fatalf("burst reached %d connections", n)
	}
	poll.Until(t, poll.Timeout, "the burst", func() bool { return ts.Stats().Events >= 48 })
	got := ts.EventCounts(nil)
	want := []EventCount{{"READY", 1}, {"GUILD_CREATE", 7}, {"MESSAGE_CREATE", 40}}
	if !slices.Equal(got, want) {
		t.Fatalf("EventCounts = %v, want %v", got, want)
	}
	var sum uint64
	for _, c := range got {
		sum += c.Count
	}
	if st := ts.Stats(); sum != st.Events || st.ResumeURL != sim.ResumeURL() {
		t.Fatalf("counts sum to %d, Events %d; ResumeURL %q, want %q", sum, st.Events, st.ResumeURL, sim.ResumeURL())
	}
	buf := make([]EventCount, 0, 8)
	if a := testing.AllocsPerRun(100, func() { buf = ts.EventCounts(buf[:0]) }); a != 0 {
		t.Fatalf("EventCounts into a buffer allocates %v times", a)
	}
}

// TestEventNameIndex: a known name is interned with its own counter, an
// unknown one goes to the OtherEvents counter.
func TestEventNameIndex(t *testing.T) {
	name, idx := eventName([]byte("MESSAGE_CREATE"))
	if name != "MESSAGE_CREATE" || knownEventNames[idx] != "MESSAGE_CREATE" {
		t.Fatalf("MESSAGE_CREATE: %q at %d", name, idx)
	}
	if name, idx := eventName([]byte("NOT_AN_EVENT")); name != "NOT_AN_EVENT" || idx != otherEvent {
		t.Fatalf("unknown: %q at %d, want the other counter %d", name, idx, otherEvent)
	}
	s := New(testToken, 0, 1)
	s.byName[otherEvent].Add(2)
	s.byName[0].Add(1)
	if got := s.EventCounts(nil); !slices.Equal(got, []EventCount{{knownEventNames[0], 1}, {OtherEvents, 2}}) {
		t.Fatalf("EventCounts = %v", got)
	}
}
