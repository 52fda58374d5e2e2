package tui

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

func TestNewRejectsBadOptions(t *testing.T) {
	f := newFake(fixture())
	cases := map[string][]Option{
		"refresh":     {WithRefresh(0)},
		"log size":    {WithLogSize(0)},
		"split count": {WithSplitCount(1)},
		"buffer":      {WithEventBuffer(-1)},
		"clock":       {WithClock(nil)},
		"location":    {WithLocation(nil)},
		"context":     {WithContext(nil)}, //nolint:staticcheck // the nil is the point
	}
	for name, opts := range cases {
		if _, err := New(f, opts...); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want ErrInvalidOption naming it", name, err)
		}
	}
	if _, err := New(nil); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("nil manager: err = %v", err)
	}
}

func TestTickPullsSnapshotIntoReusedBuffer(t *testing.T) {
	f := newFake(fixture())
	m, err := New(f, WithClock(fixedClock), WithRefresh(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if msg := m.Init()(); msg != (tickMsg{}) {
		t.Fatalf("Init's command gave %T, want an immediate tick", msg)
	}
	_, cmd := m.Update(tickMsg{})
	if cmd == nil {
		t.Fatal("a tick must schedule the next tick")
	}
	if f.pulls != 1 || len(m.snap.Shards) != len(fixture().Shards) {
		t.Fatalf("pulls = %d, shards = %d", f.pulls, len(m.snap.Shards))
	}
	first := &m.snap.Shards[0]
	m.Update(tickMsg{})
	if f.pulls != 2 || &m.snap.Shards[0] != first {
		t.Fatal("the snapshot buffer was not reused")
	}
	allocs := testing.AllocsPerRun(20, func() { m.Update(tickMsg{}) })
	// tea.Tick's command and closure; nothing per shard.
	if allocs > 8 {
		t.Errorf("a tick allocates %v times", allocs)
	}
}

func TestEventsDrainIntoRing(t *testing.T) {
	f := newFake(fixture())
	m := newTestModel(t, f, 120, 40, WithLogSize(5))
	for i := range 12 {
		f.events <- manager.Event{Type: manager.EventState, Key: manager.ShardKey{ID: i, Count: 16}, At: t0}
	}
	m.Update(tickMsg{})
	if m.log.len() != 5 {
		t.Fatalf("kept %d events, want 5", m.log.len())
	}
	for i := range 5 {
		if got := m.log.at(i).Key.ID; got != 7+i {
			t.Errorf("event %d is shard %d, want %d", i, got, 7+i)
		}
	}
	if len(f.events) != 0 {
		t.Errorf("%d events left undrained", len(f.events))
	}
	if v := ansi.Strip(m.View()); !strings.Contains(v, "shard 11/16") || strings.Contains(v, "shard 6/16 ") {
		t.Errorf("log pane does not show the newest events:\n%s", v)
	}
}

func TestSubscriptionClosedByManager(t *testing.T) {
	f := newFake(fixture())
	m := newTestModel(t, f, 80, 24)
	close(f.events)
	m.Update(tickMsg{})
	if m.events != nil {
		t.Fatal("a closed subscription must be dropped")
	}
	m.Update(tickMsg{}) // must not spin or panic
}

func TestNavigation(t *testing.T) {
	f := newFake(manyShards(100))
	m := newTestModel(t, f, 80, 24)
	vis := m.visibleRows()
	if vis < 5 {
		t.Fatalf("visible rows = %d", vis)
	}
	check := func(step string, wantCursor int) {
		t.Helper()
		if m.cursor != wantCursor || m.sel.ID != wantCursor {
			t.Fatalf("%s: cursor %d sel %v, want %d", step, m.cursor, m.sel, wantCursor)
		}
		if m.cursor < m.offset || m.cursor >= m.offset+vis {
			t.Fatalf("%s: cursor %d outside the window [%d,%d)", step, m.cursor, m.offset, m.offset+vis)
		}
		if !strings.Contains(m.View(), fmt.Sprintf("> %d/100", wantCursor)) {
			t.Fatalf("%s: View does not mark the selected row %d", step, wantCursor)
		}
	}
	check("start", 0)
	press(m, "k")
	check("k at top", 0)
	press(m, "j")
	check("j", 1)
	press(m, "down")
	check("down", 2)
	press(m, "up")
	check("up", 1)
	press(m, "pgdown")
	check("pgdown", 1+vis-1)
	press(m, "ctrl+f")
	check("ctrl+f", 1+2*(vis-1))
	press(m, "pgup")
	check("pgup", 1+vis-1)
	press(m, "ctrl+b")
	check("ctrl+b", 1)
	press(m, "G")
	check("G", 99)
	press(m, "j")
	check("j at bottom", 99)
	if m.offset != 100-vis {
		t.Errorf("offset at bottom = %d, want %d", m.offset, 100-vis)
	}
	press(m, "g")
	check("g", 0)
	press(m, "end")
	check("end", 99)
	press(m, "home")
	check("home", 0)
}

func TestSelectionFollowsShardAcrossRefresh(t *testing.T) {
	f := newFake(fixture())
	m := newTestModel(t, f, 120, 40)
	selectKey(t, m, 9, 16)
	// The split of 3/16 completes: the retiring shard leaves the snapshot.
	shards := slices.DeleteFunc(slices.Clone(f.snap.Shards), func(s manager.ShardInfo) bool { return s.Role == manager.RoleRetiring })
	f.setShards(shards)
	m.Update(tickMsg{})
	if m.sel != (manager.ShardKey{ID: 9, Count: 16}) || m.snap.Shards[m.rows[m.cursor]].Key != m.sel {
		t.Fatalf("selection = %v at cursor %d, want 9/16", m.sel, m.cursor)
	}
	// The selected shard goes away: the cursor stays in place on a neighbour.
	cursor := m.cursor
	f.setShards(slices.DeleteFunc(slices.Clone(shards), func(s manager.ShardInfo) bool { return s.Key.ID == 9 }))
	m.Update(tickMsg{})
	if m.cursor != cursor || m.sel.ID != 10 {
		t.Fatalf("after removal: cursor %d sel %v, want %d and 10/16", m.cursor, m.sel, cursor)
	}
	// Everything goes away: no selection, no shard keys.
	f.setShards(nil)
	m.Update(tickMsg{})
	if m.hasSel || m.cursor != -1 {
		t.Fatalf("empty: hasSel %v cursor %d", m.hasSel, m.cursor)
	}
	for _, k := range []string{"o", "c", "r", "x", "s", "R", "j", "G"} {
		if cmd := press(m, k); cmd != nil || m.mode != modeNormal {
			t.Errorf("%q with no shards did something", k)
		}
	}
	if !strings.Contains(m.View(), "no shards yet") {
		t.Error("empty table is not explained")
	}
}

// actionCase is a per-shard action key, a shard it applies to and one it does not.
var actionCases = []struct {
	key, op      string
	on           manager.ShardKey // applies
	notOn        []manager.ShardKey
	done, target string
}{
	{"o", "open", manager.ShardKey{ID: 10, Count: 16}, []manager.ShardKey{{ID: 0, Count: 16}, {ID: 4, Count: 16}, {ID: 3, Count: 32}}, "opened", "10/16"},
	{"c", "close", manager.ShardKey{ID: 0, Count: 16}, []manager.ShardKey{{ID: 10, Count: 16}, {ID: 9, Count: 16}, {ID: 3, Count: 16}}, "closed", "0/16"},
	{"r", "resume", manager.ShardKey{ID: 10, Count: 16}, []manager.ShardKey{{ID: 11, Count: 16}, {ID: 0, Count: 16}, {ID: 19, Count: 32}}, "resumed", "10/16"},
	{"x", "restart", manager.ShardKey{ID: 7, Count: 16}, []manager.ShardKey{{ID: 10, Count: 16}, {ID: 9, Count: 16}, {ID: 3, Count: 32}}, "restarted", "7/16"},
}

func TestActionKeys(t *testing.T) {
	for _, tc := range actionCases {
		t.Run(tc.op, func(t *testing.T) {
			f := newFake(fixture())
			m := newTestModel(t, f, 120, 40)
			selectKey(t, m, tc.on.ID, tc.on.Count)
			if !strings.Contains(m.help.View(m.keys), tc.key+" "+tc.op) {
				t.Fatalf("help does not offer %q:\n%s", tc.key, m.help.View(m.keys))
			}
			cmd := press(m, tc.key)
			if got := f.callList(); len(got) != 0 {
				t.Fatalf("Update called the manager itself: %v", got)
			}
			if !strings.Contains(ansi.Strip(m.View()), "…") || len(m.pending) != 1 {
				t.Fatalf("no busy status while %s runs", tc.op)
			}
			// A second press while it runs does nothing (the manager would say ErrBusy).
			if press(m, tc.key) != nil {
				t.Fatalf("%q fired twice for the same shard", tc.key)
			}
			runCmd(t, m, cmd)
			want := fmt.Sprintf("%s %d", tc.op, tc.on.ID)
			if got := f.callList(); len(got) != 1 || got[0] != want {
				t.Fatalf("calls = %v, want [%s]", got, want)
			}
			if status := "✓ " + tc.done + " " + tc.target; !strings.Contains(m.View(), status) {
				t.Fatalf("status line lacks %q:\n%s", status, m.View())
			}
			if len(m.pending) != 0 || !m.keys.bindingFor(tc.key).Enabled() {
				t.Fatal("the key stays disabled after the action ended")
			}

			// The manager's error reaches the status line, naming the shard.
			f.errs[tc.op] = &manager.ShardError{Key: tc.on, Op: tc.op, Err: manager.ErrBusy}
			runCmd(t, m, press(m, tc.key))
			if line := m.statusLine(); !strings.Contains(line, "✗ "+tc.op+" "+tc.target) || !strings.Contains(line, "already running") {
				t.Fatalf("error status = %q", line)
			}
		})
	}
}

// bindingFor finds the binding of a key name (tests only).
func (k *KeyMap) bindingFor(name string) *key.Binding {
	for _, b := range []*key.Binding{&k.Open, &k.Close, &k.Resume, &k.Restart, &k.Split, &k.Reshard} {
		if slices.Contains(b.Keys(), name) {
			return b
		}
	}
	return nil
}

func TestDisabledKeysDoNothing(t *testing.T) {
	for _, tc := range actionCases {
		for _, sk := range tc.notOn {
			t.Run(tc.op+"/"+sk.String(), func(t *testing.T) {
				f := newFake(fixture())
				m := newTestModel(t, f, 120, 40)
				selectKey(t, m, sk.ID, sk.Count)
				before := strings.Split(m.View(), "\n")
				if cmd := press(m, tc.key); cmd != nil {
					t.Fatalf("%q on %v returned a command", tc.key, sk)
				}
				if len(f.callList()) != 0 || len(m.pending) != 0 {
					t.Fatalf("%q on %v reached the manager", tc.key, sk)
				}
				// Only the status line changes: it says why.
				after := strings.Split(m.View(), "\n")
				status := len(after) - 2
				if len(after) != len(before) || !slices.Equal(after[:status], before[:status]) || after[status+1] != before[status+1] {
					t.Fatalf("%q on %v changed more than the status line", tc.key, sk)
				}
				if line := ansi.Strip(after[status]); !strings.HasPrefix(line, tc.key+": shard "+sk.String()+" ") {
					t.Fatalf("%q on %v: status line %q does not say why", tc.key, sk, line)
				}
				if strings.Contains(m.help.View(m.keys), tc.key+" "+tc.op) {
					t.Fatalf("help shows the disabled %q", tc.key)
				}
			})
		}
	}
}

func TestJoiningAndRetiringShardsTakeNoShardAction(t *testing.T) {
	for _, sk := range []manager.ShardKey{{ID: 3, Count: 16}, {ID: 3, Count: 32}, {ID: 19, Count: 32}} {
		f := newFake(fixture())
		m := newTestModel(t, f, 120, 40)
		selectKey(t, m, sk.ID, sk.Count)
		for _, k := range []string{"o", "c", "r", "x", "s"} {
			if press(m, k) != nil || m.mode != modeNormal {
				t.Errorf("%q acted on %v", k, sk)
			}
		}
		if len(f.callList()) != 0 {
			t.Errorf("calls on %v: %v", sk, f.callList())
		}
	}
}

func TestSplitConfirmation(t *testing.T) {
	for _, answer := range []string{"y", "Y", "n", "N", "esc"} {
		t.Run(answer, func(t *testing.T) {
			f := newFake(fixture())
			m := newTestModel(t, f, 120, 40)
			selectKey(t, m, 9, 16) // failed with 4011: the shard to split
			if cmd := press(m, "s"); cmd != nil {
				t.Fatal("s must ask first")
			}
			if m.mode != modeConfirm {
				t.Fatal("no confirmation")
			}
			if line := m.statusLine(); !strings.Contains(line, "Split 9/16 into 9/32, 25/32? [y/n]") {
				t.Fatalf("prompt = %q", line)
			}
			help := m.help.View(m.keys)
			if !strings.Contains(help, "y confirm") || strings.Contains(help, "q quit") || strings.Contains(help, "s split") {
				t.Fatalf("help during confirmation: %q", help)
			}
			// Other keys wait for the answer.
			for _, k := range []string{"c", "j", "q", "/", "s"} {
				if press(m, k) != nil || m.mode != modeConfirm || m.sel.ID != 9 {
					t.Fatalf("%q acted during the confirmation", k)
				}
			}
			cmd := press(m, answer)
			if m.mode != modeNormal {
				t.Fatal("the answer did not end the confirmation")
			}
			if answer == "y" || answer == "Y" {
				runCmd(t, m, cmd)
				if got := f.callList(); !slices.Equal(got, []string{"split 9 2"}) {
					t.Fatalf("calls = %v", got)
				}
				if !strings.Contains(m.statusLine(), "✓ split 9/16 into 9/32, 25/32") {
					t.Fatalf("status = %q", m.statusLine())
				}
				return
			}
			if cmd != nil || len(f.callList()) != 0 {
				t.Fatalf("%q did not cancel: calls %v", answer, f.callList())
			}
			if !strings.Contains(m.statusLine(), "split of 9/16 into 9/32, 25/32 cancelled") {
				t.Fatalf("status = %q", m.statusLine())
			}
		})
	}
}

func TestSplitCountOption(t *testing.T) {
	f := newFake(fixture())
	m := newTestModel(t, f, 120, 40, WithSplitCount(3))
	selectKey(t, m, 9, 16)
	press(m, "s")
	if line := m.statusLine(); !strings.Contains(line, "Split 9/16 into 9/48, 25/48, 41/48?") {
		t.Fatalf("prompt = %q", line)
	}
	runCmd(t, m, press(m, "y"))
	if got := f.callList(); !slices.Equal(got, []string{"split 9 3"}) {
		t.Fatalf("calls = %v", got)
	}
}

func TestReshardConfirmation(t *testing.T) {
	f := newFake(settled())
	m := newTestModel(t, f, 120, 40)
	press(m, "R")
	if line := m.statusLine(); !strings.Contains(line, "Re-shard all 15 active shards to 32 (Discord's recommendation)? [y/n]") {
		t.Fatalf("prompt = %q", line)
	}
	press(m, "n")
	if len(f.callList()) != 0 || m.mode != modeNormal {
		t.Fatal("n did not cancel")
	}
	press(m, "R")
	cmd := press(m, "y")
	if m.keys.Reshard.Enabled() {
		t.Error("R stays enabled while a re-shard runs")
	}
	runCmd(t, m, cmd)
	if got := f.callList(); !slices.Equal(got, []string{"reshard 32"}) {
		t.Fatalf("calls = %v", got)
	}
	if !strings.Contains(m.statusLine(), "✓ re-sharded to 32 shards") || !m.keys.Reshard.Enabled() {
		t.Fatalf("status = %q", m.statusLine())
	}

	// Unknown recommendation: ask the manager for Discord's current one.
	f2 := newFake(settled())
	f2.snap.RecommendedShards = 0
	m2 := newTestModel(t, f2, 120, 40)
	press(m2, "R")
	if !strings.Contains(m2.statusLine(), "Discord's current recommendation?") {
		t.Fatalf("prompt = %q", m2.statusLine())
	}
	runCmd(t, m2, press(m2, "y"))
	if got := f2.callList(); !slices.Equal(got, []string{"reshard 0"}) {
		t.Fatalf("calls = %v", got)
	}
}

func TestFilter(t *testing.T) {
	cases := []struct{ text, want string }{
		{"3", "3/16 3/32"},
		{"3/32", "3/32"},
		{"10-12", "10/16 11/16 12/16"},
		{"ready", "0/16 1/16 3/16 3/32 5/16 13/16 14/16 15/16"},
		{"!ready", "2/16 4/16 6/16 7/16 8/16 9/16 10/16 11/16 12/16 19/32"},
		{"0-9 !ready !queued", "2/16 6/16 7/16 9/16"},
		{"recon,fail", "7/16 9/16"},
		{"joining retiring", "3/16 3/32 19/32"},
		{"closed 11", "11/16"},
		{"1 2", "1/16 2/16"},
	}
	for _, tc := range cases {
		t.Run(tc.text, func(t *testing.T) {
			f := newFake(fixture())
			m := newTestModel(t, f, 120, 40)
			press(m, "/")
			if m.mode != modeFilter || !strings.Contains(m.help.View(m.keys), "enter apply") {
				t.Fatal("/ did not open the filter")
			}
			typeText(m, tc.text)
			if got := keysString(shownKeys(m)); got != tc.want {
				t.Fatalf("preview rows = %q, want %q", got, tc.want)
			}
			press(m, "enter")
			if m.mode != modeNormal {
				t.Fatalf("enter did not apply: %v", m.filterErr)
			}
			if got := keysString(shownKeys(m)); got != tc.want {
				t.Fatalf("rows = %q, want %q", got, tc.want)
			}
			// Refreshes keep the filter.
			m.Update(tickMsg{})
			if got := keysString(shownKeys(m)); got != tc.want {
				t.Fatalf("after tick rows = %q", got)
			}
			if !strings.Contains(m.statusLine(), "filter "+tc.text) {
				t.Fatalf("status = %q", m.statusLine())
			}
			// Esc in normal mode clears it.
			press(m, "esc")
			if len(m.rows) != len(m.snap.Shards) {
				t.Fatal("esc did not clear the filter")
			}
		})
	}
}

func TestFilterEditing(t *testing.T) {
	f := newFake(fixture())
	m := newTestModel(t, f, 80, 24)
	press(m, "/")
	typeText(m, "bogus")
	if m.filterErr == nil || !strings.Contains(m.statusLine(), "not a shard ID") {
		t.Fatalf("no error for a bad term: %q", m.statusLine())
	}
	press(m, "enter")
	if m.mode != modeFilter {
		t.Fatal("enter applied a bad filter")
	}
	press(m, "ctrl+u")
	typeText(m, "1-2")
	press(m, " ")
	typeText(m, "!resuming")
	press(m, "backspace")
	typeText(m, "g")
	// Keys that are actions in normal mode are text here.
	typeText(m, " q")
	if m.input.Value() != "1-2 !resuming q" || m.quitting {
		t.Fatalf("input = %q quitting %v", m.input.Value(), m.quitting)
	}
	press(m, "ctrl+w")
	if m.input.Value() != "1-2 !resuming " {
		t.Fatalf("after ctrl+w input = %q", m.input.Value())
	}
	press(m, "enter")
	if got := keysString(shownKeys(m)); got != "1/16" {
		t.Fatalf("rows = %q", got)
	}
	// Reopening edits the applied filter; esc clears it.
	press(m, "/")
	if m.input.Value() != "1-2 !resuming" {
		t.Fatalf("reopened input = %q", m.input.Value())
	}
	press(m, "esc")
	if m.mode != modeNormal || !m.filter.empty() || len(m.rows) != len(m.snap.Shards) {
		t.Fatal("esc did not clear the filter")
	}
	// A filter matching nothing says so.
	press(m, "/")
	typeText(m, "9999")
	press(m, "enter")
	if !strings.Contains(m.View(), `no shard matches the filter "9999"`) {
		t.Fatal("empty result is not explained")
	}
	for _, k := range []string{"o", "c", "s"} {
		if press(m, k) != nil || m.mode != modeNormal {
			t.Errorf("%q acted with no shard shown", k)
		}
	}
}

func TestParseFilterErrors(t *testing.T) {
	for _, text := range []string{"x", "3/2", "5-1", "-3", "3/", "!", "1/0", "a-b"} {
		if _, err := parseFilter(text); err == nil {
			t.Errorf("parseFilter(%q) accepted", text)
		} else if !strings.Contains(err.Error(), "filter") {
			t.Errorf("parseFilter(%q) error %q does not name the filter", text, err)
		}
	}
}

func TestSort(t *testing.T) {
	f := newFake(fixture())
	m := newTestModel(t, f, 120, 40)
	selectKey(t, m, 9, 16)
	press(m, "S")
	if m.sortCol != sortState {
		t.Fatalf("sort column = %v", m.sortCol)
	}
	var states []gateway.State
	for _, i := range m.rows {
		states = append(states, m.snap.Shards[i].State)
	}
	if !slices.IsSorted(states) {
		t.Fatalf("not sorted by state: %v", states)
	}
	if m.snap.Shards[m.rows[m.cursor]].Key != (manager.ShardKey{ID: 9, Count: 16}) {
		t.Fatal("the selection did not follow the shard")
	}
	if !strings.Contains(m.View(), "STATE▲") {
		t.Fatal("the sort column is not marked")
	}
	press(m, "I")
	states = states[:0]
	for _, i := range m.rows {
		states = append(states, m.snap.Shards[i].State)
	}
	if !slices.IsSortedFunc(states, func(a, b gateway.State) int { return int(b) - int(a) }) || !strings.Contains(m.View(), "STATE▼") {
		t.Fatalf("not reversed: %v", states)
	}
	press(m, "S") // latency, descending
	if m.snap.Shards[m.rows[0]].Key.ID != 5 {
		t.Fatalf("slowest first: got %v", m.snap.Shards[m.rows[0]].Key)
	}
	for range numSortColumns - 3 { // NODE is skipped: no cluster here
		press(m, "S")
	}
	if m.sortCol != sortShard {
		t.Fatalf("S does not cycle back to SHARD: %v", m.sortCol)
	}
	press(m, "I")
	if got := keysString(shownKeys(m)); !strings.HasPrefix(got, "0/16 1/16 2/16 3/16 3/32 4/16") {
		t.Fatalf("default order: %q", got)
	}
	// S is on the help line; I (reverse) in the full help, with S.
	help := m.help.View(m.keys) + m.help.FullHelpView(m.keys.FullHelp())
	if !strings.Contains(help, "S sort") || !regexp.MustCompile(`I +reverse`).MatchString(help) {
		t.Fatalf("sort keys missing from help: %q", help)
	}
}

func TestSortQueuePutsUnqueuedLast(t *testing.T) {
	f := newFake(fixture())
	m := newTestModel(t, f, 120, 40)
	for m.sortCol != sortQueue {
		press(m, "S")
	}
	if got := keysString(shownKeys(m))[:len("6/16 8/16 4/16")]; got != "6/16 8/16 4/16" {
		t.Fatalf("queue order starts %q", got)
	}
}

func TestResize(t *testing.T) {
	f := newFake(manyShards(300))
	m := newTestModel(t, f, 120, 40)
	press(m, "G")
	for _, size := range [][2]int{{200, 60}, {120, 40}, {100, 30}, {80, 24}, {60, 20}, {40, 12}, {30, 8}, {20, 5}, {10, 3}} {
		w, h := size[0], size[1]
		m.Update(tea.WindowSizeMsg{Width: w, Height: h})
		v := m.View()
		lines := strings.Split(v, "\n")
		if len(lines) != h {
			t.Errorf("%dx%d: %d lines", w, h, len(lines))
		}
		for i, l := range lines {
			if lw := ansi.StringWidth(l); lw > w {
				t.Errorf("%dx%d: line %d is %d wide: %q", w, h, i, lw, l)
			}
		}
		if m.cursor < m.offset || m.cursor >= m.offset+m.visibleRows() {
			t.Errorf("%dx%d: cursor %d not in window at %d", w, h, m.cursor, m.offset)
		}
		if !strings.Contains(v, "> 299/300") && h > 2 {
			t.Errorf("%dx%d: selected row not shown", w, h)
		}
	}
	// Columns drop by priority: at 80 columns the ones the detail line
	// shows go, and UPTIME and LAST CLOSE (what went wrong) stay.
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	hdr := ansi.Strip(strings.Split(m.View(), "\n")[2])
	for _, gone := range []string{"SESSION", "SEQ", "BUCKET", "QUEUE"} {
		if strings.Contains(hdr, gone) {
			t.Errorf("80 columns still show %s: %q", gone, hdr)
		}
	}
	for _, kept := range []string{"SHARD", "STATE", "LATENCY", "GUILDS", "EV/S", "UPTIME", "LAST CLOSE"} {
		if !strings.Contains(hdr, kept) {
			t.Errorf("80 columns lost %s: %q", kept, hdr)
		}
	}
	// The sort column stays, whatever its rank.
	for m.sortCol != sortSeq {
		press(m, "S")
	}
	if hdr := ansi.Strip(strings.Split(m.View(), "\n")[2]); !strings.Contains(hdr, "SEQ▲") {
		t.Errorf("sorted by SEQ at 80 columns, the column is not shown: %q", hdr)
	}
}

func TestHelpToggle(t *testing.T) {
	f := newFake(fixture())
	m := newTestModel(t, f, 120, 40)
	short := m.View()
	vis, logH := m.visibleRows(), m.layout().logH
	press(m, "?")
	if !m.help.ShowAll || !strings.Contains(m.View(), "page down") {
		t.Fatal("? did not show the full help")
	}
	// Every row still fits: the room comes from the log.
	if len(strings.Split(m.View(), "\n")) != 40 || m.visibleRows() != vis || m.layout().logH >= logH {
		t.Fatal("the full help did not take room from the log")
	}
	press(m, "?")
	if m.View() != short {
		t.Fatal("? again did not restore the view")
	}
	// When the rows do not all fit, the table gives room too.
	m = newTestModel(t, newFake(manyShards(100)), 120, 40)
	vis = m.visibleRows()
	press(m, "?")
	if m.visibleRows() >= vis {
		t.Fatal("the full help did not take room from an overflowing table")
	}
}

func TestQuit(t *testing.T) {
	for _, keys := range [][]string{{"q"}, {"ctrl+c"}, {"s", "ctrl+c"}, {"/", "ctrl+c"}} {
		t.Run(strings.Join(keys, ","), func(t *testing.T) {
			f := newFake(fixture())
			quits := 0
			m := newTestModel(t, f, 80, 24, WithQuitHandler(func() { quits++ }))
			cmd := press(m, keys...)
			if cmd == nil {
				t.Fatal("no command")
			}
			if _, ok := cmd().(tea.QuitMsg); !ok {
				t.Fatal("the command does not quit")
			}
			press(m, "q")
			if quits != 1 {
				t.Fatalf("quit handler called %d times", quits)
			}
			if m.View() != "" {
				t.Fatal("View after quit is not empty")
			}
			if len(f.callList()) != 0 {
				t.Fatalf("quitting called the manager: %v", f.callList())
			}
		})
	}
}

func TestCloseEndsSubscriptionAndActions(t *testing.T) {
	f := newFake(fixture())
	m := newTestModel(t, f, 80, 24)
	selectKey(t, m, 0, 16)
	cmd := press(m, "c")
	m.Close()
	m.Close()
	if f.unsubscribed != 1 {
		t.Fatalf("unsubscribed %d times", f.unsubscribed)
	}
	cmd()
	if len(f.ctxErrs) != 1 || !errors.Is(f.ctxErrs[0], context.Canceled) {
		t.Fatalf("an action after Close ran with ctx error %v", f.ctxErrs)
	}
}

func TestNetworkTextIsSanitized(t *testing.T) {
	f := newFake(fixture())
	f.snap.BotUser.Username = "bot\x1b]0;pwned\x07"
	m := newTestModel(t, f, 200, 40)
	f.events <- manager.Event{Type: manager.EventState, Key: manager.ShardKey{ID: 15, Count: 16}, Reason: "\x1b[2Jx", CloseCode: 4000, At: t0}
	m.Update(tickMsg{})
	lipglossASCII(t)
	v := m.View()
	if strings.ContainsAny(v, "\x1b\x07") {
		t.Fatalf("control characters from the network reach the terminal: %q", v)
	}
	// The sequences go whole: no "[2J" debris is left to read.
	if !strings.Contains(v, "4000 evil reason") || strings.Contains(v, "[2J") || strings.Contains(v, "pwned") {
		t.Fatalf("sanitized reason missing:\n%s", v)
	}
}

func TestWorksWithRealManagerType(t *testing.T) {
	mgr, err := manager.New("token", manager.WithShardCount(4), manager.WithMaxConcurrency(2), manager.WithGatewayURL("ws://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close(context.Background())
	m, err := New(mgr, WithClock(fixedClock))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m.Update(tickMsg{})
	if v := m.View(); !strings.Contains(v, "no shards yet") || !strings.Contains(v, "budget") {
		t.Fatalf("view of an unopened manager:\n%s", v)
	}
}

// R applies only when a re-shard can run and would change something.
func TestReshardKeyOnlyWhenItApplies(t *testing.T) {
	cases := map[string]func(*manager.Snapshot){
		"a split runs":              func(s *manager.Snapshot) { *s = fixture() },
		"a re-shard runs":           func(s *manager.Snapshot) { s.Resharding = true },
		"limited to some shard IDs": func(s *manager.Snapshot) { s.CanReshard = false },
		"already at the recommendation": func(s *manager.Snapshot) {
			s.RecommendedShards = 16
		},
		"a shard is busy": func(s *manager.Snapshot) { s.Shards[2].Busy = true },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			snap := settled()
			for i := range snap.Shards {
				snap.Shards[i].Key.Count = 16
			}
			change(&snap)
			f := newFake(snap)
			m := newTestModel(t, f, 120, 40)
			if m.keys.Reshard.Enabled() {
				t.Fatal("R enabled")
			}
			press(m, "R")
			if m.mode != modeNormal || len(f.callList()) != 0 {
				t.Fatal("R acted")
			}
		})
	}
}

// A busy shard (an action or an automatic split under way) and every shard
// during a re-shard take no per-shard action.
func TestBusyShardsTakeNoAction(t *testing.T) {
	for _, resharding := range []bool{false, true} {
		snap := settled()
		snap.Resharding = resharding
		for i := range snap.Shards {
			snap.Shards[i].Busy = !resharding
		}
		f := newFake(snap)
		m := newTestModel(t, f, 120, 40)
		selectKey(t, m, 0, 16)
		for _, k := range []string{"o", "c", "r", "x", "s"} {
			if press(m, k) != nil || m.mode != modeNormal {
				t.Fatalf("resharding=%v: %q acted on a busy shard", resharding, k)
			}
		}
		if len(f.callList()) != 0 {
			t.Fatalf("calls %v", f.callList())
		}
	}
}

// The manager splits by ID: if the asked-about shard changed count before
// the answer, the split is refused rather than applied to another shard.
func TestSplitConfirmRefusesAChangedShard(t *testing.T) {
	f := newFake(settled())
	m := newTestModel(t, f, 120, 40)
	selectKey(t, m, 9, 16)
	press(m, "s")
	f.mu.Lock()
	for i := range f.snap.Shards {
		if f.snap.Shards[i].Key == (manager.ShardKey{ID: 9, Count: 16}) {
			f.snap.Shards[i].Key.Count = 32 // split automatically meanwhile
		}
	}
	f.mu.Unlock()
	m.refresh()
	if cmd := press(m, "y"); cmd != nil || len(f.callList()) != 0 {
		t.Fatal("split a shard other than the one asked about")
	}
	if !strings.Contains(m.statusLine(), "changed while you were asked") {
		t.Fatalf("status = %q", m.statusLine())
	}
}
