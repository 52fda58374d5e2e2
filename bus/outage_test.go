package bus

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/manager"
)

// received records, independently of the bus, the last sequence each
// session delivered to the manager: what shardtop received from Discord.
type received struct {
	mu   sync.Mutex
	last map[string]int64 // session ID -> last seq
	cur  map[int]string   // shard ID -> session
}

func newReceived() *received {
	return &received{last: map[string]int64{}, cur: map[int]string{}}
}

func (r *received) handler(d gateway.Dispatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.Event == "READY" {
		var ready struct {
			SessionID string `json:"session_id"`
		}
		_ = json.Unmarshal(d.Data, &ready)
		r.cur[d.ShardID] = ready.SessionID
	}
	if s := r.cur[d.ShardID]; s != "" {
		r.last[s] = max(r.last[s], d.Seq)
	}
}

func (r *received) lastOf(session string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[session]
}

// outage stops ns for d while traffic flows, sampling what the bus holds
// in memory; it returns the most in flight seen and the most the NATS
// client buffered for after its reconnect.
func outage(t *testing.T, ns *testNATS, b *Bus, d time.Duration) (maxInFlight int, maxInFlightBytes int64, maxBuffered int) {
	t.Helper()
	ns.stop()
	poll.Until(t, poll.Timeout, "the bus to see NATS gone", func() bool { return !b.Stats().Connected })
	end := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for now := range tick.C {
		st := b.Stats()
		maxInFlight, maxInFlightBytes = max(maxInFlight, st.InFlight), max(maxInFlightBytes, st.InFlightBytes)
		if n, err := b.nc.Buffered(); err == nil {
			maxBuffered = max(maxBuffered, n)
		}
		if now.After(end) {
			break
		}
	}
	ns.start()
	return maxInFlight, maxInFlightBytes, maxBuffered
}

// TestOutageResumesAndLosesNothing: NATS stopped for 10 s during traffic,
// then started. The shards are held meanwhile, memory stays within the
// buffer, and afterwards every event Discord sent is in the stream once,
// in order: the held shards resumed and Discord replayed what they missed.
func TestOutageResumesAndLosesNothing(t *testing.T) {
	t.Parallel()
	const shards = 4
	ns := startNATS(t)
	b := newTestBus(t, ns.connect(t), WithMaxPending(500), WithMaxPendingBytes(1<<20))
	sim := startSim(t, discordsim.Config{Shards: shards, MaxConcurrency: shards, Guilds: 16, EventRate: 100})
	m := newTestManager(t, sim, b)
	c := collect(t, ns.connect(t), "outage")
	openReady(t, m)
	poll.Until(t, poll.Timeout, "traffic on the stream", func() bool { return c.count("MESSAGE_CREATE") > 100 })

	inFlight, inFlightBytes, buffered := outage(t, ns, b, 10*time.Second)
	if inFlight > 500 || inFlightBytes > 1<<20 {
		t.Errorf("during the outage the bus held %d events, %d bytes: over its buffer (500, 1 MiB)", inFlight, inFlightBytes)
	}
	if buffered > 64<<10 {
		t.Errorf("during the outage the NATS client buffered %d bytes for its reconnect", buffered)
	}
	poll.Until(t, 30*time.Second, "every shard resumed and Ready", func() bool { return allReady(m) && b.Stats().Held == 0 })
	poll.Until(t, poll.Timeout, "more traffic after the outage", func() bool {
		return b.Stats().Published > 0 && c.count("MESSAGE_CREATE") > 100+shards*100
	})
	sim.SetEventRate(0)

	sessions := sim.Sessions()
	if len(sessions) != shards {
		t.Fatalf("%d sessions after the outage, want %d (resumed, not identified anew): %+v", len(sessions), shards, sessions)
	}
	poll.UntilState(t, 30*time.Second, "every event of every session in the consumer", func() (bool, string) {
		have := map[string]int64{}
		for _, e := range c.all() {
			have[e.session] = max(have[e.session], e.seq)
		}
		for _, s := range sim.Sessions() {
			if have[s.ID] < s.Seq {
				return false, "session " + s.ID + ": consumer at " + strconv.FormatInt(have[s.ID], 10) + ", Discord at " + strconv.FormatInt(s.Seq, 10)
			}
		}
		return true, ""
	})
	checkExactlyOnce(t, c.all())
	st := b.Stats()
	// Events are not taken during the outage: refused by Take, or failed
	// in flight (a shard held at once by a failure may refuse none).
	if st.Lost != 0 || st.Refused+st.Failed == 0 {
		t.Errorf("after an outage Discord could replay: lost %d (want 0), refused %d and failed %d (want some)", st.Lost, st.Refused, st.Failed)
	}
	if ss := sim.Stats(); ss.Identifies != shards || ss.Resumes < shards || ss.ResumesRejected != 0 {
		t.Errorf("Discord saw %d identifies, %d resumes, %d rejected: want %d identifies and every shard resumed", ss.Identifies, ss.Resumes, ss.ResumesRejected, shards)
	}
}

// TestOutageLongerThanSessionCountsLost: NATS stopped for longer than
// Discord keeps a session. The shards identify anew; what they had
// received and the stream did not acknowledge is counted exactly and
// announced by a marker, and nothing else is missing.
func TestOutageLongerThanSessionCountsLost(t *testing.T) {
	t.Parallel()
	const shards = 4
	ns := startNATS(t)
	b := newTestBus(t, ns.connect(t))
	sim := startSim(t, discordsim.Config{Shards: shards, MaxConcurrency: shards, Guilds: 16, EventRate: 100,
		SessionTTL: 3 * time.Second})
	rec := newReceived()
	m := newTestManager(t, sim, b, manager.WithDispatchHandler(rec.handler))
	c := collect(t, ns.connect(t), "lost")
	openReady(t, m)
	poll.Until(t, poll.Timeout, "traffic on the stream", func() bool { return c.count("MESSAGE_CREATE") > 100 })
	old := map[string]bool{}
	for _, s := range sim.Sessions() {
		old[s.ID] = true
	}

	outage(t, ns, b, 10*time.Second)
	poll.UntilState(t, 30*time.Second, "a lost marker for every shard", func() (bool, string) {
		return c.count(LostEvent) >= shards, describe(c.all())
	})
	poll.Until(t, poll.Timeout, "every shard Ready in a new session", func() bool { return allReady(m) })

	events := c.all()
	stored := map[string]map[int64]bool{}
	for _, e := range events {
		if e.name != LostEvent {
			if stored[e.session] == nil {
				stored[e.session] = map[int64]bool{}
			}
			stored[e.session][e.seq] = true
		}
	}
	var markers, sum int64
	for _, e := range events {
		if e.name != LostEvent {
			continue
		}
		markers++
		from, _ := strconv.ParseInt(e.header.Get(HeaderLostFrom), 10, 64)
		to, _ := strconv.ParseInt(e.header.Get(HeaderLostTo), 10, 64)
		lost, _ := strconv.ParseInt(e.header.Get(HeaderLost), 10, 64)
		if !old[e.session] {
			t.Errorf("marker for session %s, not one of the sessions before the outage", e.session)
		}
		if last := rec.lastOf(e.session); to != last {
			t.Errorf("marker for %s ends at %d; the manager received up to %d", e.session, to, last)
		}
		var missing int64
		for s := int64(1); s <= to; s++ {
			if !stored[e.session][s] {
				missing++
				if s < from {
					t.Errorf("session %s: event %d missing from the stream and before the marker's range %d-%d", e.session, s, from, to)
				}
			}
		}
		if lost != missing || lost < 1 {
			t.Errorf("marker for %s says %d lost in %d-%d; the stream misses %d", e.session, lost, from, to, missing)
		}
		var body struct {
			Shard    [2]int
			Session  string
			From, To int64
			Lost     int64
		}
		if err := json.Unmarshal(e.data, &body); err != nil || body.Session != e.session || body.From != from || body.To != to || body.Lost != lost {
			t.Errorf("marker body %s (%v) does not match its headers", e.data, err)
		}
		sum += lost
	}
	if markers != shards {
		t.Errorf("%d markers, want one per shard (%d):\n%s", markers, shards, describe(events))
	}
	if st := b.Stats(); st.Lost != uint64(sum) {
		t.Errorf("Stats().Lost = %d, the markers add up to %d", st.Lost, sum)
	}
}

// TestFullBufferHoldsAndResumes: with a small buffer and no wait for room,
// a burst fills it; the shards are held and resumed, Discord replays, and
// every event reaches the consumer once, in order, while the buffer bound
// holds throughout.
func TestFullBufferHoldsAndResumes(t *testing.T) {
	const shards, perShard, buffer = 4, 3000, 200
	ns := startNATS(t)
	b := newTestBus(t, ns.connect(t), WithMaxPending(buffer), WithBufferWait(0))
	sim := startSim(t, discordsim.Config{Shards: shards, MaxConcurrency: shards, Guilds: 16})
	m := newTestManager(t, sim, b)
	c := collect(t, ns.connect(t), "full")
	openReady(t, m)

	for id := range shards {
		sim.Burst(id, perShard)
	}
	maxInFlight := 0
	poll.UntilState(t, 60*time.Second, "every MESSAGE_CREATE in the consumer", func() (bool, string) {
		st := b.Stats()
		maxInFlight = max(maxInFlight, st.InFlight)
		return c.count("MESSAGE_CREATE") >= shards*perShard, fmt.Sprintf("%s\nbus: %+v\nsim: %+v\n%s", describe(c.all()), st, sim.Stats(), shardGaps(m))
	})
	checkExactlyOnce(t, c.all())
	if got := c.count("MESSAGE_CREATE"); got != shards*perShard {
		t.Errorf("%d MESSAGE_CREATE, want %d", got, shards*perShard)
	}
	st := b.Stats()
	if st.Refused == 0 {
		t.Errorf("the buffer of %d never filled during a burst of %d: the test tests nothing", buffer, shards*perShard)
	}
	if maxInFlight > buffer || st.Lost != 0 {
		t.Errorf("in flight up to %d (buffer %d), lost %d", maxInFlight, buffer, st.Lost)
	}
	if ss := sim.Stats(); ss.Identifies != shards || ss.Resumes == 0 || ss.ResumesRejected != 0 {
		t.Errorf("Discord saw %d identifies, %d resumes, %d rejected: a hold must resume", ss.Identifies, ss.Resumes, ss.ResumesRejected)
	}
}
