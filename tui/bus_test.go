package tui

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// fakeBus serves figures the test sets.
type fakeBus struct {
	mu sync.Mutex
	s  bus.Stats
}

func (b *fakeBus) Stats() bus.Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.s
	s.Consumers = append([]bus.ConsumerStats(nil), b.s.Consumers...)
	s.Shards = append([]bus.ShardStats(nil), b.s.Shards...)
	return s
}

func (b *fakeBus) set(f func(*bus.Stats)) {
	b.mu.Lock()
	f(&b.s)
	b.mu.Unlock()
}

// busFixture is a bus with traffic, a held shard, lost events and two
// consumers, one of them behind.
func busFixture() *fakeBus {
	return &fakeBus{s: bus.Stats{
		Mode: "embedded", URL: "nats://127.0.0.1:4222", Connected: true,
		Published: 182000, Acked: 181988, Duplicates: 2, Refused: 40,
		InFlight: 12, InFlightBytes: 3500, Buffer: 65536, BufferBytes: 64 << 20,
		Held: 1, Lost: 3,
		Stream: bus.StreamStats{Name: "SHARDTOP", Msgs: 181988, Bytes: 250 << 20, FirstSeq: 1, LastSeq: 181988},
		Consumers: []bus.ConsumerStats{
			{Name: "moderation", Pending: 0, AckPending: 1},
			{Name: "workers", Pending: 3450, AckPending: 12, Redelivered: 2},
		},
		Shards: []bus.ShardStats{
			{ShardID: 7, ShardCount: 16, InFlight: 5, Held: true, Lost: 3},
			{ShardID: 0, ShardCount: 16, InFlight: 7},
		},
		Updated: t0.Add(-time.Second),
	}}
}

// clock is a test clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// busModel is the golden scene with the bus: a second after the first
// refresh, 120 more events were published.
func busModel(t *testing.T, w, h int) (*Model, *fakeBus, *clock) {
	b := busFixture()
	c := &clock{now: t0}
	f := newFake(fixture())
	for _, ev := range fixtureEvents() {
		f.events <- ev
	}
	f.details = detailFixture()
	m := newTestModel(t, f, w, h, WithBus(b), WithClock(c.Now))
	c.add(2 * time.Second)
	b.set(func(s *bus.Stats) { s.Published += 240 })
	m.Update(tickMsg{})
	return m, b, c
}

func checkGolden(t *testing.T, name, got string, h int) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("View differs from %s (go test -run %s -update rewrites it)\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
	if n := strings.Count(got, "\n") + 1; n != h {
		t.Errorf("%d lines, want %d", n, h)
	}
}

// checkWidth fails if a line of the view is wider than w.
func checkWidth(t *testing.T, view string, w int) {
	t.Helper()
	for i, l := range strings.Split(view, "\n") {
		if lw := ansi.StringWidth(l); lw > w {
			t.Errorf("line %d is %d wide, more than %d: %q", i, lw, w, ansi.Strip(l))
		}
	}
}

// TestBusPanel: the panel says the bus's mode, URL and connection, its
// publish rate, what is in flight, held shards, lost events, each
// consumer's backlog and redeliveries and the stream, at 120x40 and
// (shorter) at 80x24.
func TestBusPanel(t *testing.T) {
	lipglossASCII(t)
	for _, size := range [][2]int{{120, 40}, {80, 24}} {
		w, h := size[0], size[1]
		t.Run(strings.Join([]string{itoa(w), itoa(h)}, "x"), func(t *testing.T) {
			m, _, _ := busModel(t, w, h)
			got := m.View()
			checkGolden(t, "bus_"+itoa(w)+"x"+itoa(h), got, h)
			checkWidth(t, got, w)
			plain := ansi.Strip(got)
			want := []string{"EVENT BUS", "embedded", "nats://127.0.0.1:4222", "connected", "publish 120/s", "in flight 12/65536", "held 1", "lost 3"}
			if w >= 120 {
				want = append(want, "workers", "backlog 3450", "redelivered 2", "stream SHARDTOP 181988 msgs 250 MB")
			}
			for _, s := range want {
				if !strings.Contains(plain, s) {
					t.Errorf("the view lacks %q:\n%s", s, plain)
				}
			}
		})
	}
}

func itoa(n int) string { return string(appendCount(nil, int64(n))) }

// TestBusPanelStates: a disconnected bus says so; stale stream figures
// say when they were read; consumers beyond the room are summed up.
func TestBusPanelStates(t *testing.T) {
	lipglossASCII(t)
	s := busFixture().s
	s.Connected = false
	s.Updated = t0.Add(-time.Minute)
	for i := range 5 {
		s.Consumers = append(s.Consumers, bus.ConsumerStats{Name: "extra" + itoa(i), Pending: 10, Redelivered: 1})
	}
	p := busPanel{st: defaultStyles(), stats: &s, rate: 3.5, now: t0}
	full := ansi.Strip(p.Render(120, p.fullLines()))
	for _, want := range []string{"disconnected", "read 1m00s ago", "extra4", "publish 3.5/s"} {
		if !strings.Contains(full, want) {
			t.Errorf("full panel lacks %q:\n%s", want, full)
		}
	}
	short := ansi.Strip(p.Render(120, 4))
	if n := strings.Count(short, "\n") + 1; n != 4 {
		t.Fatalf("%d lines, want 4:\n%s", n, short)
	}
	// Two lines for seven consumers: one shown, the other six summed up.
	if !strings.Contains(short, "+6 more consumers, backlog 3500, redelivered 7") || strings.Contains(short, "stream") {
		t.Errorf("short panel:\n%s", short)
	}
}

// TestNoBusNoPanel: without a bus, or with a nil one (the bus is off), the
// view is the one without the option.
func TestNoBusNoPanel(t *testing.T) {
	lipglossASCII(t)
	want := goldenModel(t, 120, 40).View()
	var nilBus *bus.Bus
	f := newFake(earlier())
	for _, ev := range fixtureEvents() {
		f.events <- ev
	}
	m := newTestModel(t, f, 120, 40, WithBus(nilBus))
	f.mu.Lock()
	f.snap = fixture()
	f.mu.Unlock()
	m.Update(tickMsg{})
	if got := m.View(); got != want || strings.Contains(got, "EVENT BUS") {
		t.Errorf("a nil bus changed the view:\n%s", got)
	}
}

// detailFixture is the past of shard 7/16: a start-up, a close by Discord
// and a failed dial; its events by name; ten samples.
func detailFixture() map[manager.ShardKey]manager.ShardDetail {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	d := manager.ShardDetail{
		Changes: []manager.StateRecord{
			{At: at(-300), From: gateway.StateIdle, To: gateway.StateQueued, Reason: "waiting for an identify slot"},
			{At: at(-299), From: gateway.StateQueued, To: gateway.StateConnecting, Reason: "identify slot near: dialing"},
			{At: at(-298), From: gateway.StateConnecting, To: gateway.StateIdentifying, Reason: "identify slot granted"},
			{At: at(-297), From: gateway.StateIdentifying, To: gateway.StateReady, Reason: "READY"},
			{At: at(-10), From: gateway.StateReady, To: gateway.StateReconnecting, Reason: "close 4000 unknown error: resuming", CloseCode: 4000},
			{At: at(-8), From: gateway.StateReconnecting, To: gateway.StateConnecting, Reason: "dialing to resume"},
			{At: at(-7), From: gateway.StateConnecting, To: gateway.StateReconnecting, Reason: "dial failed", Err: "connection refused"},
		},
		Events: []gateway.EventCount{
			{Name: "MESSAGE_CREATE", Count: 170000}, {Name: "PRESENCE_UPDATE", Count: 3800}, {Name: "GUILD_CREATE", Count: 1177},
			{Name: "TYPING_START", Count: 20}, {Name: "READY", Count: 1}, {Name: gateway.OtherEvents, Count: 2},
		},
		SampleEvery: 5 * time.Second,
	}
	for i := range 10 {
		d.Samples = append(d.Samples, manager.Sample{At: at(-50 + 5*i), EventsPerSec: float64(40 + 5*i), Latency: time.Duration(30+i) * time.Millisecond})
	}
	d.Samples[9].EventsPerSec, d.Samples[9].Latency = 0, 0 // reconnecting
	return map[manager.ShardKey]manager.ShardDetail{{ID: 7, Count: 16}: d}
}

// TestDetailView: enter on 7/16 opens its detail view, with its whole
// session ID and resume URL, its backlog on the bus, sparklines, events by
// name and state changes with close codes, newest first; up and down go to
// the next shard's; the list's keys say why they wait; enter and esc go
// back.
func TestDetailView(t *testing.T) {
	lipglossASCII(t)
	for _, size := range [][2]int{{120, 40}, {80, 24}} {
		w, h := size[0], size[1]
		t.Run(itoa(w)+"x"+itoa(h), func(t *testing.T) {
			m, _, _ := busModel(t, w, h)
			f := m.mgr.(*fakeManager)
			f.mu.Lock()
			for i := range f.snap.Shards {
				if f.snap.Shards[i].Key == (manager.ShardKey{ID: 7, Count: 16}) {
					f.snap.Shards[i].ResumeURL = "wss://gateway-us-east1-b.discord.gg"
				}
			}
			f.mu.Unlock()
			selectKey(t, m, 7, 16)
			press(m, "enter")
			if !m.detailOpen {
				t.Fatal("enter did not open the detail view")
			}
			got := m.View()
			checkGolden(t, "detail_"+itoa(w)+"x"+itoa(h), got, h)
			checkWidth(t, got, w)
			plain := ansi.Strip(got)
			for _, s := range []string{
				"7/16 reconnecting", "session 073f9c1e7a5b2d4c6e8f0a1b2c3d4e5f6", "resume wss://gateway-us-east1-b.discord.gg",
				"bus in flight 5", "held until the bus takes events again", "lost 3",
				"ev/s", "▄▄▅▅▆▆▇▇█ ", "latency", "last 5m", "EVENTS BY NAME", "MESSAGE_CREATE", "STATE CHANGES",
				"ready → reconnecting 4000 unknown", "connecting → reconnecting dial failed",
				"esc back",
			} {
				if !strings.Contains(plain, s) {
					t.Errorf("the detail view lacks %q:\n%s", s, plain)
				}
			}
			if strings.Contains(plain, "IDENTIFY BACKLOG") || strings.Contains(plain, "SHARD▲") {
				t.Errorf("the list shows under the detail view:\n%s", plain)
			}
			// Newest first.
			if i, j := strings.Index(plain, "dial failed"), strings.Index(plain, "identify slot granted"); j >= 0 && i > j {
				t.Errorf("state changes not newest first:\n%s", plain)
			}
			press(m, "/")
			if m.mode != modeNormal || !strings.Contains(ansi.Strip(m.statusLine()), "not in the detail view") {
				t.Errorf("/ in the detail view: mode %v, status %q", m.mode, ansi.Strip(m.statusLine()))
			}
			press(m, "j")
			if !m.detailOpen || m.det.Info.Key != (manager.ShardKey{ID: 8, Count: 16}) {
				t.Fatalf("j in the detail view shows %v (open %v), want 8/16", m.det.Info.Key, m.detailOpen)
			}
			if v := ansi.Strip(m.View()); !strings.Contains(v, "8/16 queued") || !strings.Contains(v, "none yet") {
				t.Errorf("8/16's detail:\n%s", v)
			}
			press(m, "esc")
			if m.detailOpen || !strings.Contains(ansi.Strip(m.View()), "IDENTIFY BACKLOG") {
				t.Fatal("esc did not go back to the list")
			}
			press(m, "enter", "enter")
			if m.detailOpen {
				t.Fatal("enter did not go back to the list")
			}
		})
	}
}

// TestDetailViewClosesWhenShardGoes: the detail view of a shard that
// leaves (a split replaced it) goes back to the list.
func TestDetailViewClosesWhenShardGoes(t *testing.T) {
	lipglossASCII(t)
	f := newFake(fixture())
	m := newTestModel(t, f, 120, 40)
	selectKey(t, m, 3, 16)
	press(m, "enter")
	if !m.detailOpen {
		t.Fatal("not open")
	}
	var rest []manager.ShardInfo
	for _, si := range fixture().Shards {
		if si.Key != (manager.ShardKey{ID: 3, Count: 16}) {
			rest = append(rest, si)
		}
	}
	f.setShards(rest)
	m.Update(tickMsg{})
	if m.detailOpen && m.det.Info.Key == (manager.ShardKey{ID: 3, Count: 16}) {
		t.Fatal("the detail view still shows a shard that is gone")
	}
	if v := m.View(); strings.Count(v, "\n")+1 != 40 {
		t.Fatalf("view of %d lines", strings.Count(v, "\n")+1)
	}
}

func TestSparkline(t *testing.T) {
	cases := []struct {
		vals  []float64
		width int
		want  string
	}{
		{[]float64{0, 1, 2, 4, 8}, 5, " ▁▂▄█"},
		{[]float64{1, 8}, 4, "  ▁█"},     // right aligned
		{[]float64{8, 8, 1, 8}, 2, "▁█"}, // the newest
		{[]float64{0, 0}, 2, "  "},       // nothing
		{[]float64{0.001, 100}, 2, "▁█"}, // tiny, but not nothing
		{[]float64{3, 3, 3}, 3, "███"},   // flat
	}
	for _, c := range cases {
		if got := sparkline(c.vals, c.width); got != c.want {
			t.Errorf("sparkline(%v, %d) = %q, want %q", c.vals, c.width, got, c.want)
		}
	}
}
