package tui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/limiter"
	"github.com/shardtop/shardtop/manager"
)

// fakeManager records the calls the UI makes and serves a fixed snapshot.
type fakeManager struct {
	mu           sync.Mutex
	snap         manager.Snapshot
	calls        []string
	errs         map[string]error // by op: "open", "close", ...
	ctxErrs      []error          // ctx.Err() seen by each call
	events       chan manager.Event
	unsubscribed int
	pulls        int
	details      map[manager.ShardKey]manager.ShardDetail // the past of ShardDetailInto
	// local, when set, is this process's node in a cluster: as the
	// cluster view may, ShardDetailInto knows only that node's shards.
	local string
}

func newFake(snap manager.Snapshot) *fakeManager {
	return &fakeManager{snap: snap, errs: map[string]error{}, events: make(chan manager.Event, 64)}
}

func (f *fakeManager) SnapshotInto(dst *manager.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulls++
	shards := append(dst.Shards[:0], f.snap.Shards...)
	*dst = f.snap
	dst.Shards = shards
}

// ShardDetailInto gives the shard's info from the snapshot with the past
// set in details.
func (f *fakeManager) ShardDetailInto(key manager.ShardKey, dst *manager.ShardDetail) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	dst.Changes, dst.Events, dst.Samples = dst.Changes[:0], dst.Events[:0], dst.Samples[:0]
	for _, si := range f.snap.Shards {
		if si.Key == key && (f.local == "" || si.Node == f.local) {
			d := f.details[key]
			dst.Info = si
			dst.Changes = append(dst.Changes, d.Changes...)
			dst.Events = append(dst.Events, d.Events...)
			dst.Samples = append(dst.Samples, d.Samples...)
			dst.SampleEvery = d.SampleEvery
			return true
		}
	}
	dst.Info = manager.ShardInfo{}
	return false
}

func (f *fakeManager) Subscribe(buffer int) (<-chan manager.Event, func()) {
	var once sync.Once
	return f.events, func() {
		once.Do(func() {
			f.mu.Lock()
			f.unsubscribed++
			f.mu.Unlock()
		})
	}
}

func (f *fakeManager) record(ctx context.Context, op string, args ...int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := op
	for _, a := range args {
		call += fmt.Sprintf(" %d", a)
	}
	f.calls = append(f.calls, call)
	f.ctxErrs = append(f.ctxErrs, ctx.Err())
	return f.errs[op]
}

func (f *fakeManager) OpenShard(ctx context.Context, id int) error { return f.record(ctx, "open", id) }
func (f *fakeManager) CloseShard(ctx context.Context, id int) error {
	return f.record(ctx, "close", id)
}
func (f *fakeManager) ResumeShard(ctx context.Context, id int) error {
	return f.record(ctx, "resume", id)
}
func (f *fakeManager) RestartShard(ctx context.Context, id int) error {
	return f.record(ctx, "restart", id)
}
func (f *fakeManager) SplitShard(ctx context.Context, id, k int) error {
	return f.record(ctx, "split", id, k)
}
func (f *fakeManager) Reshard(ctx context.Context, count int) error {
	return f.record(ctx, "reshard", count)
}

func (f *fakeManager) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeManager) setShards(shards []manager.ShardInfo) {
	f.mu.Lock()
	f.snap.Shards = shards
	f.mu.Unlock()
}

// t0 is the fixed "now" of every test.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return t0 }

// fixture is a 16-shard bot at max_concurrency 4 in the middle of a split
// of 3/16, with every state on show.
func fixture() manager.Snapshot {
	type row struct {
		id, count int
		role      manager.Role
		state     gateway.State
		lat       time.Duration
		guilds    int
		eps       float64
		seq       int64
		session   string
		queue     int
		code      int
		reason    string
		uptime    time.Duration
	}
	sess := func(id int) string { return fmt.Sprintf("%02x3f9c1e7a5b2d4c6e8f0a1b2c3d4e5f6", id) }
	rows := []row{
		{0, 16, manager.RoleActive, gateway.StateReady, 42 * time.Millisecond, 1210, 48.2, 183422, sess(0), -1, 0, "", 26*time.Hour + 5*time.Minute},
		{1, 16, manager.RoleActive, gateway.StateReady, 38 * time.Millisecond, 1188, 51.7, 179001, sess(1), -1, 0, "", 26*time.Hour + 5*time.Minute},
		{2, 16, manager.RoleActive, gateway.StateResuming, 0, 1203, 0, 170553, sess(2), -1, 4000, "unknown error", 3*time.Minute + 7*time.Second},
		{3, 16, manager.RoleRetiring, gateway.StateReady, 45 * time.Millisecond, 2490, 97.3, 352110, sess(3), -1, 0, "", 26*time.Hour + 5*time.Minute},
		{3, 32, manager.RoleJoining, gateway.StateReady, 51 * time.Millisecond, 1242, 0, 1250, sess(35), -1, 0, "", 41 * time.Second},
		{4, 16, manager.RoleActive, gateway.StateQueued, 0, 0, 0, 0, "", 2, 4009, "session timed out", 12 * time.Second},
		{5, 16, manager.RoleActive, gateway.StateReady, 1250 * time.Millisecond, 1199, 47.9, 181200, sess(5), -1, 0, "", 26*time.Hour + 5*time.Minute},
		{6, 16, manager.RoleActive, gateway.StateConnecting, 0, 0, 0, 0, "", 0, 0, "", 2 * time.Second},
		{7, 16, manager.RoleActive, gateway.StateReconnecting, 40 * time.Millisecond, 1177, 0, 175000, sess(7), -1, 4000, "unknown error", 26*time.Hour + 5*time.Minute},
		{8, 16, manager.RoleActive, gateway.StateQueued, 0, 0, 0, 0, "", 1, 0, "", 9 * time.Second},
		{9, 16, manager.RoleActive, gateway.StateFailed, 0, 0, 0, 0, "", -1, 4011, "sharding required", 0},
		// The snapshot keeps a stopped shard's last figures: the table must not show them.
		{10, 16, manager.RoleActive, gateway.StateClosed, 44 * time.Millisecond, 1215, 6.0, 180444, sess(10), -1, 4000, "closed by shardtop", 5 * time.Hour},
		{11, 16, manager.RoleActive, gateway.StateClosed, 0, 0, 0, 0, "", -1, 1000, "ended", 0},
		{12, 16, manager.RoleActive, gateway.StateIdentifying, 0, 0, 0, 0, "", -1, 4007, "invalid seq", 1 * time.Second},
		{13, 16, manager.RoleActive, gateway.StateReady, 36 * time.Millisecond, 1230, 12345.6, 1234567890, sess(13), -1, 0, "", 26*time.Hour + 5*time.Minute},
		{14, 16, manager.RoleActive, gateway.StateReady, 39 * time.Millisecond, 1201, 50.1, 182000, sess(14), -1, 0, "", 26*time.Hour + 5*time.Minute},
		{15, 16, manager.RoleActive, gateway.StateReady, 41 * time.Millisecond, 1191, 49.4, 181999, sess(15), -1, 4000, "evil \x1b[2J\x1b[31mreason\x07", 26*time.Hour + 5*time.Minute},
		{19, 32, manager.RoleJoining, gateway.StateIdentifying, 0, 0, 0, 0, "", -1, 0, "", 1 * time.Second},
	}
	s := manager.Snapshot{
		At:                t0,
		BotUser:           manager.User{ID: "1234567890", Username: "shardbot"},
		MaxConcurrency:    4,
		RecommendedShards: 32,
		CanReshard:        true,
	}
	var latSum time.Duration
	var latN int
	for _, r := range rows {
		info := manager.ShardInfo{
			Key: manager.ShardKey{ID: r.id, Count: r.count}, Role: r.role, State: r.state,
			Since: t0.Add(-r.uptime), Latency: r.lat, SmoothedLatency: r.lat, Guilds: r.guilds,
			EventsPerSec: r.eps, Sequence: r.seq, SessionID: r.session, Resumable: r.session != "", Bucket: r.id % 4,
			QueuePos: r.queue, LastCloseCode: r.code, LastCloseReason: r.reason, Uptime: r.uptime,
		}
		if r.id == 5 {
			info.Since = t0.Add(-3*time.Minute - 20*time.Second) // Ready again after a resume
		}
		if r.id == 7 { // its resume URL refused the last dial: the second attempt waits
			info.RetryAt, info.ReconnectAttempts, info.Reconnects = t0.Add(3200*time.Millisecond), 2, 3
			info.LastCloseAt = t0.Add(-10 * time.Second)
			info.LastError, info.LastErrorAt = "gateway: shard 7: dial: dial tcp 127.0.0.1:43121: connect: connection refused", t0.Add(-7*time.Second)
		}
		if r.id == 9 {
			info.LastCloseAt = t0.Add(-2 * time.Second)
		}
		s.Shards = append(s.Shards, info)
		if r.role != manager.RoleActive {
			continue
		}
		s.Totals.Total++
		s.Totals.EventsPerSec += r.eps
		if r.state == gateway.StateReady {
			s.Totals.Ready++
			latSum += r.lat
			latN++
			s.Totals.WorstLatency = max(s.Totals.WorstLatency, r.lat)
		}
	}
	s.Totals.AvgLatency = latSum / time.Duration(latN)
	s.Totals.Identifies, s.Totals.Resumes = 21, 9
	s.Limiter = limiter.Snapshot{
		At: t0, Window: 5 * time.Second, Margin: 500 * time.Millisecond, MaxConcurrency: 4,
		Buckets: []limiter.BucketSnapshot{
			{Index: 0, Waiting: []int{8, 4}, NextSlot: t0.Add(3200 * time.Millisecond), LastGrant: t0.Add(-2300 * time.Millisecond)},
			{Index: 1, NextSlot: t0},
			{Index: 2, Waiting: []int{6}, HeadApproaching: true, NextSlot: t0},
			{Index: 3, Waiting: []int{19}, NextSlot: t0.Add(1500 * time.Millisecond)},
		},
		Budget:  limiter.BudgetSnapshot{Known: true, Total: 1000, Remaining: 987, Reserve: 10, ResetAt: t0.Add(20*time.Hour + 13*time.Minute)},
		Waiting: 4,
	}
	return s
}

// fixtureEvents are the lifecycle events the golden views show.
func fixtureEvents() []manager.Event {
	k := func(id, count int) manager.ShardKey { return manager.ShardKey{ID: id, Count: count} }
	return []manager.Event{
		{Type: manager.EventState, Key: k(7, 16), From: gateway.StateReady, To: gateway.StateReconnecting, CloseCode: 4000, Reason: "unknown error", At: t0.Add(-10 * time.Second)},
		{Type: manager.EventSplitStarted, Key: k(3, 16), At: t0.Add(-9 * time.Second)},
		{Type: manager.EventState, Key: k(7, 16), From: gateway.StateReconnecting, To: gateway.StateConnecting, Reason: "dialing to resume", At: t0.Add(-8 * time.Second)},
		{Type: manager.EventState, Key: k(7, 16), From: gateway.StateConnecting, To: gateway.StateReconnecting, Reason: "dial failed", At: t0.Add(-7 * time.Second),
			Err: errors.New("gateway: shard 7: dial: dial tcp 127.0.0.1:43121: connect: connection refused")},
		{Type: manager.EventState, Key: k(3, 32), Role: manager.RoleJoining, From: gateway.StateIdentifying, To: gateway.StateReady, At: t0.Add(-5 * time.Second)},
		{Type: manager.EventState, Key: k(9, 16), From: gateway.StateIdentifying, To: gateway.StateFailed, CloseCode: 4011, Reason: "sharding required", At: t0.Add(-2 * time.Second)},
		{Type: manager.EventState, Key: k(2, 16), From: gateway.StateReconnecting, To: gateway.StateResuming, At: t0.Add(-1 * time.Second)},
	}
}

// startupEvents is the log of the fixture's start-up, before fixtureEvents:
// n events of shards going through identify.
func startupEvents(n int) []manager.Event {
	steps := []struct {
		from, to gateway.State
		reason   string
	}{
		{gateway.StateQueued, gateway.StateConnecting, "identify slot near: dialing"},
		{gateway.StateConnecting, gateway.StateIdentifying, "identify slot granted"},
		{gateway.StateIdentifying, gateway.StateReady, "READY"},
	}
	var out []manager.Event
	for i := range n {
		st := steps[i%len(steps)]
		id := i / len(steps)
		out = append(out, manager.Event{Type: manager.EventState, Key: manager.ShardKey{ID: id, Count: 16},
			From: st.from, To: st.to, Reason: st.reason, At: t0.Add(-time.Duration(90-id*5) * time.Second)})
	}
	return out
}

// earlier is the fixture a refresh before: its backlog was longer, so
// the bars show how far each bucket has drained.
func earlier() manager.Snapshot {
	s := fixture()
	b := s.Limiter.Buckets
	b[0].Waiting = []int{20, 24, 8, 4}
	b[2].Waiting = []int{22, 6}
	b[3].Waiting = []int{23, 27, 19}
	s.Limiter.Waiting = 9
	return s
}

// manyShards is a bot of n shards (count n) with mixed states.
// settled is the fixture with no split under way (its joining and retiring
// shards dropped, the old one back as active), so that R applies.
func settled() manager.Snapshot {
	s := fixture()
	s.Shards = slices.DeleteFunc(s.Shards, func(si manager.ShardInfo) bool { return si.Role == manager.RoleJoining })
	for i := range s.Shards {
		s.Shards[i].Role = manager.RoleActive
	}
	return s
}

func manyShards(n int) manager.Snapshot {
	s := fixture()
	s.Shards = make([]manager.ShardInfo, n)
	states := []gateway.State{gateway.StateReady, gateway.StateReady, gateway.StateReady, gateway.StateQueued, gateway.StateReconnecting, gateway.StateClosed}
	for i := range s.Shards {
		s.Shards[i] = manager.ShardInfo{
			Key: manager.ShardKey{ID: i, Count: n}, State: states[i%len(states)], Guilds: 1000 + i%500,
			Latency: time.Duration(30+i%50) * time.Millisecond, SmoothedLatency: time.Duration(30+i%50) * time.Millisecond,
			EventsPerSec: float64(i % 97), Sequence: int64(i) * 1000, SessionID: "0123456789abcdef", Bucket: i % 16,
			QueuePos: -1, Uptime: time.Duration(i) * time.Second, LastCloseCode: 4000, LastCloseReason: "unknown error",
		}
	}
	s.Totals.Total = n
	return s
}

// newTestModel makes a model over f at the given size and pulls a snapshot.
func newTestModel(t testing.TB, f *fakeManager, w, h int, opts ...Option) *Model {
	t.Helper()
	opts = append([]Option{WithClock(fixedClock), WithLocation(time.UTC)}, opts...)
	m, err := New(f, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.Update(tickMsg{})
	return m
}

// press sends key presses given as bubbletea key names ("j", "enter", "ctrl+c")
// and returns the last command.
func press(m *Model, keys ...string) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		_, cmd = m.Update(keyMsg(k))
	}
	return cmd
}

var keyTypes = map[string]tea.KeyType{
	"up": tea.KeyUp, "down": tea.KeyDown, "pgup": tea.KeyPgUp, "pgdown": tea.KeyPgDown,
	"home": tea.KeyHome, "end": tea.KeyEnd, "enter": tea.KeyEnter, "esc": tea.KeyEsc,
	"ctrl+c": tea.KeyCtrlC, "backspace": tea.KeyBackspace, "ctrl+u": tea.KeyCtrlU,
	"ctrl+w": tea.KeyCtrlW, "ctrl+b": tea.KeyCtrlB, "ctrl+f": tea.KeyCtrlF,
}

func keyMsg(k string) tea.KeyMsg {
	if k == " " { // as Bubble Tea reads it from a terminal
		return tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	}
	if t, ok := keyTypes[k]; ok {
		return tea.KeyMsg{Type: t}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

// typeText types s into the model rune by rune.
func typeText(m *Model, s string) {
	for _, r := range s {
		m.Update(keyMsg(string(r)))
	}
}

// selectKey moves the cursor to the shard with key id/count.
func selectKey(t testing.TB, m *Model, id, count int) {
	t.Helper()
	press(m, "g")
	for range len(m.rows) {
		if m.sel == (manager.ShardKey{ID: id, Count: count}) {
			return
		}
		press(m, "j")
	}
	t.Fatalf("shard %d/%d not in the rows", id, count)
}

// runCmd runs a command (an action) and feeds its message back.
func runCmd(t testing.TB, m *Model, cmd tea.Cmd) tea.Msg {
	t.Helper()
	if cmd == nil {
		t.Fatal("no command")
	}
	msg := cmd()
	m.Update(msg)
	return msg
}

func shownKeys(m *Model) []manager.ShardKey {
	var out []manager.ShardKey
	for _, i := range m.rows {
		out = append(out, m.snap.Shards[i].Key)
	}
	return out
}

func keysString(keys []manager.ShardKey) string {
	var parts []string
	for _, k := range keys {
		parts = append(parts, k.String())
	}
	return strings.Join(parts, " ")
}

func windowSize(w, h int) tea.WindowSizeMsg { return tea.WindowSizeMsg{Width: w, Height: h} }
