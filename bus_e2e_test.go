package main

import (
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
)

// streamRecord is what a durable consumer read: per session, the
// sequences in stream order, and every message ID once.
type streamRecord struct {
	mu    sync.Mutex
	seqs  map[string][]int64 // session -> seqs in stream order
	ids   map[string]int
	total int
}

// consumeAll reads the whole stream with a durable consumer that acks.
func consumeAll(t *testing.T, url string) *streamRecord {
	t.Helper()
	js := natstest.JetStream(t, url)
	ctx := t.Context()
	var cons jetstream.Consumer
	poll.Until(t, poll.Timeout, "the stream shardtop creates", func() bool {
		var err error
		cons, err = js.CreateOrUpdateConsumer(ctx, bus.DefaultStreamName, jetstream.ConsumerConfig{
			Durable: "e2e", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
		return err == nil
	})
	r := &streamRecord{seqs: map[string][]int64{}, ids: map[string]int{}}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		h := m.Headers()
		seq, _ := strconv.ParseInt(h.Get(bus.HeaderSeq), 10, 64)
		r.mu.Lock()
		s := h.Get(bus.HeaderSession)
		r.seqs[s] = append(r.seqs[s], seq)
		r.ids[h.Get(jetstream.MsgIDHeader)]++
		r.total++
		r.mu.Unlock()
		_ = m.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return r
}

// upTo reports whether every session's events 1..last[session] are in.
func (r *streamRecord) upTo(last map[string]int64) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s, n := range last {
		if got := len(r.seqs[s]); int64(got) < n {
			return false, fmt.Sprintf("session %s: %d of %d events", s, got, n)
		}
	}
	return true, ""
}

// check fails t unless each session's events are 1..n, each once, in order.
func (r *streamRecord) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range r.ids {
		if n != 1 {
			t.Errorf("message %s in the stream %d times", id, n)
		}
	}
	for s, seqs := range r.seqs {
		for i, seq := range seqs {
			if seq != int64(i+1) {
				t.Errorf("session %s: event %d of the stream is seq %d, want %d (in order, none missing)", s, i, seq, i+1)
				break
			}
		}
	}
}

// TestSIGKILLMidBurstLosesNothing: shardtop killed with SIGKILL in the
// middle of a burst and started again ends with every event in the stream
// exactly once, in order: the saved sequences were never ahead of what the
// stream had acknowledged, the restart resumed, Discord replayed the rest
// and the stream dropped what it already had.
func TestSIGKILLMidBurstLosesNothing(t *testing.T) {
	t.Parallel()
	const shards, perShard = 4, 5000
	ns := startNATSProc(t)
	sim, err := discordsim.Start(discordsim.Config{Token: e2eToken, Shards: shards, MaxConcurrency: shards, Guilds: 16,
		IdentifyWindow: 100 * time.Millisecond, HeartbeatInterval: 5 * time.Second, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	cfgPath, statePath := writeSimConfig(t, t.TempDir(), sim.APIURL(), "")
	args := []string{"-config", cfgPath, "--headless", "--log-format", "json", "--bus-url", ns.url}

	p := startProc(t, args...)
	waitAllReady(t, p, 30*time.Second)
	// The state file is written at most once a second: a kill before it
	// holds every session would make the restart identify anew.
	poll.Until(t, poll.Timeout, "every session in the state file", func() bool {
		var doc struct {
			Shard []struct {
				SessionID string `toml:"session_id"`
			} `toml:"shard"`
		}
		_, err := toml.DecodeFile(statePath, &doc) // the running shardtop holds the lock: read the file as it is
		return err == nil && len(doc.Shard) == shards
	})
	rec := consumeAll(t, ns.url)
	for id := range shards {
		sim.Burst(id, perShard)
	}
	poll.Until(t, 30*time.Second, "a third of the burst in the stream", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.total > shards*perShard/3
	})
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	rec.mu.Lock()
	atKill := rec.total
	rec.mu.Unlock()

	p = startProc(t, args...)
	waitAllReady(t, p, 30*time.Second)
	last := map[string]int64{}
	for _, s := range sim.Sessions() {
		last[s.ID] = s.Seq
	}
	if len(last) != shards {
		t.Fatalf("%d sessions after the restart, want %d; sim %+v; stderr:\n%s", len(last), shards, sim.Stats(), p.stderr)
	}
	poll.UntilState(t, 60*time.Second, "every event of every session in the stream", func() (bool, string) { return rec.upTo(last) })
	rec.check(t)
	if st := sim.Stats(); st.Identifies != shards || st.Resumes < shards {
		t.Errorf("Discord saw %d identifies and %d resumes: the restart must resume all %d shards", st.Identifies, st.Resumes, shards)
	}
	rec.mu.Lock()
	total := rec.total
	rec.mu.Unlock()
	if atKill >= total || atKill < shards*perShard/3 {
		t.Errorf("%d events in the stream at the kill, %d at the end: the kill was not mid-burst", atKill, total)
	}
	p.signal(t, syscall.SIGTERM)
	assertExit(t, p, exitOK)
}
