package tui

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// TestHelpLineKeepsMoreAndQuit: at 80 columns the help line was cut at
// "… I reverse sort …", hiding "? more • q quit". It must end with them
// whatever else is enabled, and fit a running shard's keys whole.
func TestHelpLineKeepsMoreAndQuit(t *testing.T) {
	lipglossASCII(t)
	cases := []struct {
		name  string
		snap  manager.Snapshot
		keys  []string
		whole bool // every enabled key fits
	}{
		{"running shard", fixture(), nil, true},
		{"stopped shard, filter, re-shard", settled(), []string{"/", "1", "0", "enter"}, false},
	}
	for _, tc := range cases {
		for _, w := range []int{80, 60, 40} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, w), func(t *testing.T) {
				m := newTestModel(t, newFake(tc.snap), w, 24)
				press(m, tc.keys...)
				lines := screenLines(t, m)
				help := lines[len(lines)-1]
				if !strings.HasSuffix(help, "? more • q quit") {
					t.Errorf("help line %q does not end with ? more • q quit", help)
				}
				if tc.whole && w == 80 && strings.Contains(help, "…") {
					t.Errorf("help line cut at 80 columns: %q", help)
				}
			})
		}
	}
}

// TestNoDeadBandBetweenTableAndPanels: at 150x50 seventeen empty rows sat
// between the table and the backlog while the log stopped at 11 lines.
// The table takes the rows it needs, the log the rest: with events enough
// to fill it, no line of the screen is empty.
func TestNoDeadBandBetweenTableAndPanels(t *testing.T) {
	lipglossASCII(t)
	for _, size := range [][2]int{{150, 50}, {120, 40}, {200, 60}, {100, 45}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			m := goldenModel(t, size[0], size[1], 90)
			lines := screenLines(t, m)
			for i, l := range lines {
				if strings.TrimSpace(l) == "" {
					t.Errorf("line %d is empty:\n%s", i, strings.Join(lines, "\n"))
					break
				}
			}
			// Every shard is in the table, and the detail follows its last row.
			for i, l := range lines {
				if strings.Contains(l, "+19/32") {
					if !strings.HasPrefix(lines[i+1], "0/16 ready for") {
						t.Errorf("line after the last row: %q", lines[i+1])
					}
					return
				}
			}
			t.Error("the last shard is not in the table")
		})
	}
}

// TestSelectedShardErrorShownInFull: errors were cut ("dial: dial…") and
// "connection refused" never showed. The selected shard's last error and
// last close are on screen whole, at 80 columns and at 60.
func TestSelectedShardErrorShownInFull(t *testing.T) {
	lipglossASCII(t)
	longReason := "close 4000 unknown error: the gateway said something long about why it closed this connection, more than a table cell holds"
	for _, w := range []int{80, 60} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			f := newFake(fixture())
			for _, ev := range fixtureEvents() {
				f.events <- ev
			}
			f.snap.Shards[8].LastCloseReason = longReason // 7/16
			m := newTestModel(t, f, w, 24)
			selectKey(t, m, 7, 16)
			screen := strings.Join(screenLines(t, m), " ")
			for _, want := range []string{
				"gateway: shard 7: dial: dial tcp 127.0.0.1:43121: connect: connection refused",
				"4000 unknown error: the gateway said something long about why it closed this connection, more than a table cell holds",
			} {
				if !strings.Contains(squeeze(screen), want) {
					t.Errorf("%q is not on the screen whole:\n%s", want, strings.Join(screenLines(t, m), "\n"))
				}
			}
		})
	}
}

// squeeze turns runs of spaces into one, so that wrapped text reads as one
// line once the screen's lines are joined.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestReconnectCountdown: a shard waiting to reconnect showed no countdown.
// Its STATE cell and the detail count down to RetryAt.
func TestReconnectCountdown(t *testing.T) {
	lipglossASCII(t)
	now := t0
	f := newFake(fixture()) // 7/16 dials again at t0+3.2s
	m := newTestModel(t, f, 80, 24, WithClock(func() time.Time { return now }))
	selectKey(t, m, 7, 16)
	for _, step := range []struct {
		at         time.Duration
		cell, said string
	}{
		{0, "reconnecting 3.2s", "next dial in 3.2s"},
		{1150 * time.Millisecond, "reconnecting 2.1s", "next dial in 2.1s"},
		{3200 * time.Millisecond, "reconnecting now", "dialing now"},
	} {
		now = t0.Add(step.at)
		m.Update(tickMsg{})
		screen := strings.Join(screenLines(t, m), "\n")
		if !regexp.MustCompile(`(?m)^> 7/16 +`+step.cell+` `).MatchString(screen) || !strings.Contains(screen, "7/16 reconnecting, "+step.said) {
			t.Errorf("at +%v: want %q in the row and %q in the detail:\n%s", step.at, step.cell, step.said, screen)
		}
	}
	for _, tc := range []struct {
		left time.Duration
		want string
	}{
		{-time.Second, "now"}, {time.Millisecond, "0.1s"}, {3200 * time.Millisecond, "3.2s"},
		{9950 * time.Millisecond, "10s"}, {119500 * time.Millisecond, "120s"}, {5 * time.Minute, "5m00s"},
	} {
		if got := string(appendRetry(nil, tc.left)); got != tc.want {
			t.Errorf("appendRetry(%v) = %q, want %q", tc.left, got, tc.want)
		}
	}
}

// backlogBar returns bucket i's bar in the backlog panel.
func backlogBar(t *testing.T, m *Model, i int) string {
	t.Helper()
	re := regexp.MustCompile(`b` + fmt.Sprint(i) + ` ([█·]+) `)
	for _, l := range backlogLines(t, m) {
		if s := re.FindStringSubmatch(l); s != nil {
			return s[1]
		}
	}
	t.Fatalf("no bar for b%d", i)
	return ""
}

// TestBacklogBarsShowProgress: bars were relative to the busiest bucket,
// so a lone bucket draining from 3 to 1 stayed full. Each bar is now what
// is left of its bucket's backlog since it was last empty.
func TestBacklogBarsShowProgress(t *testing.T) {
	lipglossASCII(t)
	f := newFake(bucketSnap(4, map[int]int{0: 3}))
	m := newTestModel(t, f, 120, 40)
	filled := func() int { return strings.Count(backlogBar(t, m, 0), "█") }
	full := filled()
	if full == 0 || strings.Contains(backlogBar(t, m, 0), "·") {
		t.Fatalf("3 of 3 waiting: bar %q, want full", backlogBar(t, m, 0))
	}
	step := func(waiting map[int]int) {
		f.mu.Lock()
		f.snap = bucketSnap(4, waiting)
		f.mu.Unlock()
		m.Update(tickMsg{})
	}
	step(map[int]int{0: 2})
	two := filled()
	step(map[int]int{0: 1})
	one := filled()
	if !(full > two && two > one && one > 0) {
		t.Errorf("bars for 3, 2, 1 waiting: %d, %d, %d cells; want them shrinking", full, two, one)
	}
	step(map[int]int{0: 2}) // one more joined: the peak stays 3
	if got := filled(); got != two {
		t.Errorf("2 of a peak of 3: %d cells, want %d", got, two)
	}
	step(nil) // empty: the next backlog is a new scale
	step(map[int]int{0: 1})
	if got := filled(); got != full {
		t.Errorf("1 waiting after the bucket was empty: %d cells, want full (%d)", got, full)
	}
}

// TestFullHelpListsEveryKey: the full help left out keys that did not apply
// to the selected shard. It lists every one, the disabled ones dimmed and
// named on its last line.
func TestFullHelpListsEveryKey(t *testing.T) {
	setProfile(t, termenv.ANSI256)
	// A narrow terminal puts the columns below each other, losing none.
	narrow := newTestModel(t, newFake(fixture()), 40, 60)
	press(narrow, "?")
	f := newFake(fixture())
	m := newTestModel(t, f, 120, 40)
	selectKey(t, m, 0, 16) // ready: o and r do not apply; a split runs: R neither
	press(m, "?")
	v := m.View()
	plain := ansi.Strip(v)
	for _, b := range m.keys.all() {
		h := b.Help()
		re := regexp.MustCompile(`(?m)(^| )` + regexp.QuoteMeta(h.Key) + ` +` + regexp.QuoteMeta(h.Desc) + `( |$)`)
		if !re.MatchString(plain) {
			t.Errorf("full help lacks %q %q", h.Key, h.Desc)
		}
		if !re.MatchString(ansi.Strip(narrow.View())) {
			t.Errorf("full help at 40 columns lacks %q %q:\n%s", h.Key, h.Desc, ansi.Strip(narrow.View()))
		}
	}
	// The styling that starts a dimmed entry, and an enabled description.
	sgr := func(r string) string { return r[:strings.Index(r, "X")] }
	off, on := sgr(m.st.helpOff.Render("X")), sgr(m.st.helpDesc.Render("X"))
	if off == on || off == "" {
		t.Fatal("dimmed and enabled look the same")
	}
	for _, k := range []string{"o open", "r resume", "R re-shard"} {
		if !strings.Contains(v, off+k) {
			t.Errorf("%q is not dimmed", k)
		}
	}
	for _, k := range []string{"close", "restart", "split"} {
		if !strings.Contains(v, on+" "+k) || strings.Contains(v, off+k[:1]+" "+k) {
			t.Errorf("%q is not shown as enabled", k)
		}
	}
	if !strings.Contains(plain, "dimmed: o r R esc y n/esc enter (not now; press one to see why)") {
		t.Errorf("the full help does not say which keys are off:\n%s", plain)
	}
}

// TestDisabledKeySaysWhy: a key that does not apply says why in the status
// line, and does nothing else.
func TestDisabledKeySaysWhy(t *testing.T) {
	split := fixture()
	cases := []struct {
		snap      manager.Snapshot
		sel       manager.ShardKey
		key, want string
	}{
		{split, manager.ShardKey{ID: 3, Count: 16}, "r", "r: shard 3/16 is retiring: a split or re-shard is replacing it"},
		{split, manager.ShardKey{ID: 0, Count: 16}, "r", "r: shard 0/16 is ready; resume is for a stopped shard with a saved session"},
		{split, manager.ShardKey{ID: 11, Count: 16}, "r", "r: shard 11/16 has no saved session to resume; o opens it with a new identify"},
		{split, manager.ShardKey{ID: 0, Count: 16}, "o", "o: shard 0/16 is ready; open is for a stopped (closed or failed) shard"},
		{split, manager.ShardKey{ID: 10, Count: 16}, "c", "c: shard 10/16 is already closed (o opens it)"},
		{split, manager.ShardKey{ID: 9, Count: 16}, "x", "x: shard 9/16 is failed; restart is for a running shard (o opens a stopped one)"},
		{split, manager.ShardKey{ID: 0, Count: 16}, "R", "R: a split is running; re-shard when it ends"},
		{split, manager.ShardKey{ID: 0, Count: 16}, "esc", "esc: no filter is set"},
		{split, manager.ShardKey{ID: 0, Count: 16}, "y", "y: no question to answer (s and R ask one)"},
	}
	for _, tc := range cases {
		t.Run(tc.key+"/"+tc.sel.String(), func(t *testing.T) {
			f := newFake(tc.snap)
			m := newTestModel(t, f, 120, 40)
			selectKey(t, m, tc.sel.ID, tc.sel.Count)
			if cmd := press(m, tc.key); cmd != nil || m.mode != modeNormal || len(f.callList()) != 0 {
				t.Fatalf("%q acted", tc.key)
			}
			if line := ansi.Strip(m.statusLine()); !strings.HasPrefix(line, tc.want) {
				t.Errorf("status %q, want %q", line, tc.want)
			}
		})
	}
	// No shard to show in detail: enter (and esc, no filter) say so.
	m0 := newTestModel(t, newFake(manager.Snapshot{}), 120, 40)
	for k, want := range map[string]string{"enter": "enter: no shard is selected", "esc": "esc: no filter is set"} {
		if cmd := press(m0, k); cmd != nil || m0.detailOpen {
			t.Fatalf("%q acted", k)
		}
		if line := ansi.Strip(m0.statusLine()); !strings.HasPrefix(line, want) {
			t.Errorf("no shards, %s: status %q, want %q", k, line, want)
		}
	}
	// Re-sharding: R and the shard keys say so.
	s := settled()
	s.Resharding = true
	m := newTestModel(t, newFake(s), 120, 40)
	for k, want := range map[string]string{"R": "R: a re-shard is already running", "c": "c: a re-shard is running; shard actions wait until it ends"} {
		press(m, k)
		if line := ansi.Strip(m.statusLine()); !strings.HasPrefix(line, want) {
			t.Errorf("re-sharding, %s: status %q, want %q", k, line, want)
		}
	}
	s = settled()
	s.RecommendedShards = 16
	for i := range s.Shards {
		s.Shards[i].Key.Count = 16
	}
	m = newTestModel(t, newFake(s), 120, 40)
	press(m, "R")
	if line := ansi.Strip(m.statusLine()); !strings.HasPrefix(line, "R: the bot already runs Discord's recommended 16 shards") {
		t.Errorf("at the recommendation: status %q", line)
	}
}

// TestStatusFades: messages clear after a while, successes sooner than
// notices and errors; a running action's message stays.
func TestStatusFades(t *testing.T) {
	now := t0
	f := newFake(fixture())
	m := newTestModel(t, f, 120, 40, WithClock(func() time.Time { return now }))
	selectKey(t, m, 0, 16)
	shown := func() string { return strings.TrimSpace(strings.Split(ansi.Strip(m.statusLine()), "  ")[0]) }
	after := func(d time.Duration) {
		now = now.Add(d)
		m.Update(tickMsg{})
	}

	cmd := press(m, "c")
	after(time.Minute)
	if !strings.HasPrefix(shown(), "closing 0/16") {
		t.Fatalf("a running action's status faded: %q", shown())
	}
	runCmd(t, m, cmd)
	if shown() != "✓ closed 0/16" {
		t.Fatalf("status %q", shown())
	}
	after(statusOKFade - time.Millisecond)
	if shown() == "" {
		t.Fatal("a success faded too soon")
	}
	after(time.Millisecond)
	if shown() != "" {
		t.Fatalf("a success did not fade after %v: %q", statusOKFade, shown())
	}

	press(m, "o") // a notice: why o does not apply
	after(statusOKFade)
	if shown() == "" {
		t.Fatal("a notice faded as soon as a success")
	}
	after(statusInfoFade - statusOKFade)
	if shown() != "" {
		t.Fatalf("a notice did not fade after %v: %q", statusInfoFade, shown())
	}

	f.errs["close"] = errors.New("boom")
	runCmd(t, m, press(m, "c"))
	after(statusInfoFade)
	if !strings.Contains(shown(), "boom") {
		t.Fatalf("an error faded as soon as a notice: %q", shown())
	}
	after(statusErrFade - statusInfoFade)
	if shown() != "" {
		t.Fatalf("an error did not fade after %v: %q", statusErrFade, shown())
	}
	if statusOKFade >= statusInfoFade || statusInfoFade >= statusErrFade {
		t.Error("successes must fade before notices, notices before errors")
	}
}

// TestCloseReadsNaturally: after c, the log, the LAST CLOSE column and the
// detail read well ("ready → closed (4000, session kept resumable)", not
// "closed (4000 closed: …)"), and so does a cancelled split.
func TestCloseReadsNaturally(t *testing.T) {
	lipglossASCII(t)
	f := newFake(fixture())
	k := manager.ShardKey{ID: 0, Count: 16}
	const reason = "closed: session kept resumable"
	f.events <- manager.Event{Type: manager.EventState, Key: k, From: gateway.StateReady, To: gateway.StateClosed, CloseCode: 4000, Reason: reason, At: t0.Add(-3 * time.Second)}
	f.events <- manager.Event{Type: manager.EventState, Key: k, From: gateway.StateClosed, To: gateway.StateConnecting, Reason: "dialing to resume", At: t0.Add(-2 * time.Second)}
	f.snap.Shards[0].State, f.snap.Shards[0].LastCloseCode, f.snap.Shards[0].LastCloseReason = gateway.StateClosed, 4000, reason
	f.snap.Shards[0].LastCloseAt = t0.Add(-3 * time.Second)
	m := newTestModel(t, f, 80, 24)
	screen := strings.Join(screenLines(t, m), "\n")
	for _, want := range []string{
		"11:59:57 shard 0/16 ready → closed (4000, session kept resumable)",
		"11:59:58 shard 0/16 closed → connecting (dialing to resume)",
		"0/16 closed, session saved (r resumes it)",
		"last close 4000 closed: session kept resumable at 11:59:57",
	} {
		if !strings.Contains(squeeze(screen), want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
	if !regexp.MustCompile(`(?m)^> 0/16 +closed .* 4000 closed: session… *$`).MatchString(screen) {
		t.Errorf("LAST CLOSE not cut at a word:\n%s", screen)
	}

	selectKey(t, m, 9, 16)
	press(m, "s", "n")
	if line := ansi.Strip(m.statusLine()); !strings.HasPrefix(line, "split of 9/16 into 9/32, 25/32 cancelled") {
		t.Errorf("cancelled split: %q", line)
	}
	s := settled()
	m = newTestModel(t, newFake(s), 120, 40)
	press(m, "R", "n")
	if line := ansi.Strip(m.statusLine()); !strings.HasPrefix(line, "re-shard to 32 shards cancelled") {
		t.Errorf("cancelled re-shard: %q", line)
	}
}

// TestActionResultComesWithItsSnapshot: "✓ closed 0/16" showed while the
// row still said ready until the next tick.
func TestActionResultComesWithItsSnapshot(t *testing.T) {
	lipglossASCII(t)
	f := newFake(fixture())
	m := newTestModel(t, f, 120, 40, WithRefresh(time.Hour))
	selectKey(t, m, 0, 16)
	msg := press(m, "c")()
	f.mu.Lock()
	f.snap.Shards[0].State = gateway.StateClosed // what the close did
	f.mu.Unlock()
	m.Update(msg)
	screen := strings.Join(screenLines(t, m), "\n")
	if !strings.Contains(screen, "✓ closed 0/16") || !regexp.MustCompile(`(?m)^> 0/16 +closed `).MatchString(screen) {
		t.Errorf("the result and the table disagree:\n%s", screen)
	}
}
