package manager

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/shardtop/shardtop/gateway"
)

// The tests in this file check the loop's decisions (splits, aborts,
// automatic splits, what WaitReady and the snapshot say) in virtual time
// (testing/synctest). The shards never connect: the daily budget is spent,
// so every shard waits in its identify queue (and a dial would wait
// forever), and the test plays their state changes to the loop, as the
// gateway's state handler would. What the shards do on the wire is the
// other tests', against discordsim.

// restAnswers is Discord's REST for a bot of shards shards, in process.
type restAnswers struct{ shards, conc int }

func (r restAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	body := `{"id":"1","username":"loop"}`
	if strings.HasSuffix(req.URL.Path, "/gateway/bot") {
		body = `{"url":"ws://gateway.invalid","shards":` + strconv.Itoa(r.shards) + `,"session_start_limit":{"total":1000,"remaining":0,"reset_after":86400000,"max_concurrency":` + strconv.Itoa(r.conc) + `}}`
	}
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body)), Header: http.Header{}, Request: req}, nil
}

// loopManager opens a manager of shards shards whose connections never
// come up, inside a synctest bubble.
func loopManager(t *testing.T, shards int, opts ...Option) *Manager {
	t.Helper()
	hang := &websocket.Dialer{NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	base := []Option{
		WithHTTPClient(&http.Client{Transport: restAnswers{shards, 1}}),
		WithIdentifyWindow(time.Second),
		WithGatewayOptions(gateway.WithDialer(hang), gateway.WithHandshakeTimeout(24*time.Hour), gateway.WithCompression(gateway.CompressionNone)),
	}
	m, err := New(testToken, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	synctest.Wait() // every shard queued, for good
	t.Cleanup(func() {
		if err := m.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// entryOf returns the registered entry of key.
func entryOf(t *testing.T, m *Manager, key ShardKey) *entry {
	t.Helper()
	for _, e := range m.view.Load().entries {
		if e.key == key {
			return e
		}
	}
	t.Fatalf("no entry %v", key)
	return nil
}

// play tells the loop that the shard of key went to state, as its state
// handler would, and waits for the loop to have dealt with it.
func play(t *testing.T, m *Manager, key ShardKey, to gateway.State, code int, err error) {
	t.Helper()
	e := entryOf(t, m, key)
	from := e.infoOf().handled
	m.send(func(l *loop) {
		l.onState(e, gateway.StateChange{ShardID: key.ID, ShardCount: key.Count, From: from, To: to, CloseCode: code, Err: err, At: time.Now()})
	})
	synctest.Wait()
}

// events drains what ch holds now.
func events(ch <-chan Event) []string {
	var out []string
	for {
		select {
		case ev := <-ch:
			s := ev.Type.String() + " " + ev.Key.String()
			if ev.Type == EventState {
				s += " " + ev.To.String()
			}
			out = append(out, s)
		default:
			return out
		}
	}
}

// A split holds its new shards' dispatches until all are READY, then swaps
// them in in one step and ends the old shard; its claim is given back
// before its last event goes out; the snapshot shows each phase.
func TestLoopSplitSwapsWhenAllReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := loopManager(t, 2)
		ev, unsub := m.Subscribe(64)
		defer unsub()
		play(t, m, ShardKey{0, 2}, gateway.StateReady, 0, nil)
		play(t, m, ShardKey{1, 2}, gateway.StateReady, 0, nil)
		res := make(chan error, 1)
		go func() { res <- m.SplitShard(t.Context(), 0, 2) }()
		synctest.Wait()
		s := m.Snapshot()
		if len(s.Operations) != 1 || s.Operations[0].Phase != PhaseJoining || !slices.Equal(s.Operations[0].New, []ShardKey{{0, 4}, {2, 4}}) {
			t.Fatalf("operations %+v, want the split joining 0/4 and 2/4", s.Operations)
		}
		if si, _ := m.Shard(0); !si.Busy || si.Key != (ShardKey{0, 2}) {
			t.Fatalf("shard 0 %+v, want 0/2 still active and busy", si)
		}
		old, news := entryOf(t, m, ShardKey{0, 2}), []*entry{entryOf(t, m, ShardKey{0, 4}), entryOf(t, m, ShardKey{2, 4})}
		if !old.delivers() || news[0].delivers() || news[1].delivers() {
			t.Fatal("while joining, the old shard must deliver and the new ones not")
		}
		play(t, m, ShardKey{0, 4}, gateway.StateReady, 0, nil)
		if len(res) != 0 || m.Snapshot().Operations[0].Phase != PhaseJoining {
			t.Fatal("swapped with one of two new shards READY")
		}
		play(t, m, ShardKey{2, 4}, gateway.StateReady, 0, nil)
		if err := <-res; err != nil {
			t.Fatalf("SplitShard: %v", err)
		}
		if old.delivers() || !news[0].delivers() || !news[1].delivers() {
			t.Fatal("after the swap, the new shards must deliver and the old one not")
		}
		var keys []ShardKey
		for si := range m.Shards() {
			keys = append(keys, si.Key)
			if si.Busy {
				t.Errorf("%v still busy after the split", si.Key)
			}
		}
		if !slices.Equal(keys, []ShardKey{{0, 4}, {1, 2}, {2, 4}}) {
			t.Fatalf("active shards %v, want 0/4 1/2 2/4", keys)
		}
		if s := m.Snapshot(); len(s.Operations) != 0 || len(s.Shards) != 3 {
			t.Fatalf("after the split: %d operations, %d shards; want none and 3 (0/2 retired)", len(s.Operations), len(s.Shards))
		}
		got := events(ev)
		if i, j := slices.Index(got, "split-started 0/2"), slices.Index(got, "split-done 0/2"); i < 0 || j < i {
			t.Fatalf("events %v, want split-started then split-done", got)
		}
		// Guild routing follows the new layout: (guild_id >> 22) % count.
		for ts, want := range []ShardKey{{0, 4}, {1, 2}, {2, 4}, {1, 2}} {
			if si, ok := m.ShardByGuild(uint64(ts) << 22); !ok || si.Key != want {
				t.Errorf("guild with timestamp %d routed to %v (%v), want %v", ts, si.Key, ok, want)
			}
		}
	})
}

// A new shard that fails aborts the split: the new shards are ended, the
// old one keeps serving and is free again; WaitReady says nothing failed.
func TestLoopSplitAbortsOnFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := loopManager(t, 2)
		play(t, m, ShardKey{0, 2}, gateway.StateReady, 0, nil)
		play(t, m, ShardKey{1, 2}, gateway.StateReady, 0, nil)
		res := make(chan error, 1)
		go func() { res <- m.SplitShard(t.Context(), 0, 2) }()
		synctest.Wait()
		play(t, m, ShardKey{0, 4}, gateway.StateReady, 0, nil)
		play(t, m, ShardKey{2, 4}, gateway.StateFailed, 4014, &gateway.CloseError{Code: 4014})
		err := <-res
		var se *ShardError
		if !errors.Is(err, ErrAborted) || !errors.As(err, &se) || se.Key != (ShardKey{0, 2}) {
			t.Fatalf("SplitShard: %v, want ErrAborted naming 0/2", err)
		}
		if si, ok := m.Shard(0); !ok || si.Key != (ShardKey{0, 2}) || si.Busy || len(m.Snapshot().Shards) != 2 {
			t.Fatalf("after the abort: shard 0 %+v (%d shards), want 0/2 serving, free, and the new ones gone", si, len(m.Snapshot().Shards))
		}
		if !entryOf(t, m, ShardKey{0, 2}).delivers() {
			t.Fatal("the old shard no longer delivers after the abort")
		}
		if err := m.WaitReady(t.Context()); err != nil {
			t.Fatalf("WaitReady after an aborted split: %v", err)
		}
	})
}

// With automatic re-sharding, a 4011 splits the shard; a new shard refused
// with 4011 too makes the split wider (k x split count) under the same
// claim; WaitReady waits meanwhile instead of reporting the failure.
func TestLoopAutoSplitWidens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := loopManager(t, 2, WithAutoReshard(true))
		play(t, m, ShardKey{1, 2}, gateway.StateReady, 0, nil)
		play(t, m, ShardKey{0, 2}, gateway.StateFailed, 4011, gateway.ErrShardingRequired)
		ops := m.Snapshot().Operations
		if len(ops) != 1 || !ops[0].Auto || !slices.Equal(ops[0].New, []ShardKey{{0, 4}, {2, 4}}) {
			t.Fatalf("operations %+v, want an automatic split into 0/4 2/4", ops)
		}
		wait := make(chan error, 1)
		go func() { wait <- m.WaitReady(t.Context()) }()
		play(t, m, ShardKey{2, 4}, gateway.StateFailed, 4011, gateway.ErrShardingRequired)
		ops = m.Snapshot().Operations
		if len(ops) != 1 || !slices.Equal(ops[0].New, []ShardKey{{0, 8}, {2, 8}, {4, 8}, {6, 8}}) {
			t.Fatalf("operations %+v, want the split widened to 0/8 2/8 4/8 6/8", ops)
		}
		if len(wait) != 0 {
			t.Fatalf("WaitReady returned %v during an automatic split", <-wait)
		}
		for _, id := range []int{0, 2, 4, 6} {
			play(t, m, ShardKey{id, 8}, gateway.StateReady, 0, nil)
		}
		if err := <-wait; err != nil {
			t.Fatalf("WaitReady after the automatic split: %v", err)
		}
		var keys []ShardKey
		for si := range m.Shards() {
			keys = append(keys, si.Key)
		}
		if !slices.Equal(keys, []ShardKey{{0, 8}, {1, 2}, {2, 8}, {4, 8}, {6, 8}}) {
			t.Fatalf("active shards %v", keys)
		}
	})
}

// Without automatic re-sharding a failed shard ends WaitReady with an
// error naming it; a second action on a busy shard is refused with ErrBusy.
func TestLoopFailureAndBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := loopManager(t, 2)
		play(t, m, ShardKey{1, 2}, gateway.StateReady, 0, nil)
		res := make(chan error, 1)
		go func() { res <- m.SplitShard(t.Context(), 1, 2) }()
		synctest.Wait()
		if err := m.CloseShard(t.Context(), 1); !errors.Is(err, ErrBusy) {
			t.Fatalf("CloseShard of a shard being split: %v, want ErrBusy", err)
		}
		if err := m.Reshard(t.Context(), 4); !errors.Is(err, ErrBusy) {
			t.Fatalf("Reshard during a split: %v, want ErrBusy", err)
		}
		play(t, m, ShardKey{0, 2}, gateway.StateFailed, 4014, &gateway.CloseError{Code: 4014})
		var se *ShardError
		if err := m.WaitReady(t.Context()); !errors.As(err, &se) || se.Key != (ShardKey{0, 2}) {
			t.Fatalf("WaitReady: %v, want the failure of 0/2", err)
		}
		// The caller's context ends: the split is given up.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		m.send(func(l *loop) { l.abort(l.ops[0], ctx.Err()) })
		if err := <-res; !errors.Is(err, ErrAborted) || !errors.Is(err, context.Canceled) {
			t.Fatalf("SplitShard after its ctx ended: %v, want ErrAborted and context.Canceled", err)
		}
	})
}
