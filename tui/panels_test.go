package tui

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/limiter"
	"github.com/shardtop/shardtop/manager"
)

// screenLines renders m and returns its lines without styling, checking
// that none is wider than the terminal.
func screenLines(t *testing.T, m *Model) []string {
	t.Helper()
	lines := strings.Split(ansi.Strip(m.View()), "\n")
	if len(lines) != m.height {
		t.Errorf("%d lines, want %d", len(lines), m.height)
	}
	for i, l := range lines {
		if w := ansi.StringWidth(l); w > m.width {
			t.Errorf("line %d is %d wide (terminal %d): %q", i, w, m.width, l)
		}
	}
	return lines
}

// backlogLines is the identify backlog panel of the screen.
func backlogLines(t *testing.T, m *Model) []string {
	t.Helper()
	lines := screenLines(t, m)
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "IDENTIFY BACKLOG") {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("no backlog panel:\n%s", strings.Join(lines, "\n"))
	}
	return lines[start : start+m.layout().backlogH]
}

// bucketSnap is a 16-shard bot at max_concurrency conc, every shard Ready,
// waiting[i] shards queued in bucket i.
func bucketSnap(conc int, waiting map[int]int) manager.Snapshot {
	s := fixture()
	s.MaxConcurrency = conc
	s.Limiter.MaxConcurrency = conc
	s.Limiter.Buckets = make([]limiter.BucketSnapshot, conc)
	s.Limiter.Waiting = 0
	id := 1000
	for i := range s.Limiter.Buckets {
		bk := limiter.BucketSnapshot{Index: i, NextSlot: t0}
		for range waiting[i] {
			bk.Waiting = append(bk.Waiting, id)
			id++
		}
		s.Limiter.Waiting += waiting[i]
		s.Limiter.Buckets[i] = bk
	}
	for i := range s.Shards {
		s.Shards[i].Bucket = s.Shards[i].Key.ID % conc
	}
	return s
}

// TestBacklogShowsEveryIdleBucket is the lead's report: with nobody waiting
// the panel showed one line ("» b0 ··· 0 next 4.6s") at max_concurrency 4.
func TestBacklogShowsEveryIdleBucket(t *testing.T) {
	lipglossASCII(t)
	for _, size := range [][2]int{{120, 40}, {80, 24}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			s := bucketSnap(4, nil)
			s.Limiter.Buckets[1].NextSlot = t0.Add(4600 * time.Millisecond) // a grant 0.9 s ago
			m := newTestModel(t, newFake(s), size[0], size[1])
			selectKey(t, m, 2, 16)
			panel := strings.Join(backlogLines(t, m), "\n")
			for _, want := range []string{
				`(?m)^  b0 ·+ +0 +(next )?free`,
				`(?m)b1 ·+ +0 +(next )?4\.6s`,
				`(?m)» b2 ·+ +0 +(next )?free`,
				`(?m)b3 ·+ +0 +(next )?free`,
			} {
				if !regexp.MustCompile(want).MatchString(panel) {
					t.Errorf("backlog lacks %s:\n%s", want, panel)
				}
			}
			if strings.Contains(panel, "more buckets") || len(regexp.MustCompile(`» b\d`).FindAllString(panel, -1)) != 1 {
				t.Errorf("want all 4 buckets, the selected one marked once:\n%s", panel)
			}
			if !strings.Contains(panel, "» bucket of 2/16") {
				t.Errorf("the » marker is not explained:\n%s", panel)
			}
		})
	}
}

func TestBacklogWaitingBucketsOnFullLines(t *testing.T) {
	lipglossASCII(t)
	m := newTestModel(t, newFake(fixture()), 120, 40)
	got := strings.Join(backlogLines(t, m), "\n")
	want := strings.Join([]string{
		"IDENTIFY BACKLOG  4 waiting  window 5s  » bucket of 0/16",
		"» b0 ████████████████████    2  next 3.2s  8 4",
		"  b1 ····················    0  next free",
		"  b2 ████████████████████    1  next identifying  6",
		"  b3 ████████████████████    1  next 1.5s  19",
	}, "\n")
	if !strings.HasPrefix(got, want) {
		t.Errorf("backlog:\n%s\nwant:\n%s", got, want)
	}
}

// TestBacklogManyBuckets: more buckets than lines show the selected
// shard's bucket, the busiest ones and a line for the rest.
func TestBacklogManyBuckets(t *testing.T) {
	lipglossASCII(t)
	cases := []struct {
		w, h, conc int
		waiting    map[int]int
		more       string
	}{
		{120, 40, 64, map[int]int{40: 9, 17: 5, 63: 2}, "+"},
		{80, 24, 16, map[int]int{9: 3, 12: 7}, "+"},
		{120, 40, 64, nil, "idle"},
		{80, 24, 64, func() map[int]int {
			w := map[int]int{}
			for b := 5; b < 45; b++ {
				w[b] = 1
			}
			return w
		}(), "waiting"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%dx%d_%d_buckets_%d_busy", tc.w, tc.h, tc.conc, len(tc.waiting)), func(t *testing.T) {
			s := bucketSnap(tc.conc, tc.waiting)
			m := newTestModel(t, newFake(s), tc.w, tc.h)
			selectKey(t, m, 3, 16) // bucket 3, idle
			lines := backlogLines(t, m)
			panel := strings.Join(lines, "\n")
			shown := map[int]bool{}
			for _, match := range regexp.MustCompile(`b(\d+) +[█·]+ +(\d+)`).FindAllStringSubmatch(panel, -1) {
				var b, n int
				fmt.Sscan(match[1], &b)
				fmt.Sscan(match[2], &n)
				shown[b] = true
				if n != tc.waiting[b] {
					t.Errorf("b%d shows %d waiting, want %d", b, n, tc.waiting[b])
				}
			}
			if !regexp.MustCompile(`» b3 `).MatchString(panel) {
				t.Errorf("the selected shard's bucket b3 is not shown and marked:\n%s", panel)
			}
			waitingShown := 0
			for b, n := range tc.waiting {
				if shown[b] {
					waitingShown += n
				}
			}
			// The busiest are shown first: a hidden bucket never holds more than a shown one.
			for b := range tc.conc {
				if shown[b] {
					continue
				}
				for sb := range shown {
					if sb != 3 && tc.waiting[b] > tc.waiting[sb] {
						t.Errorf("b%d (%d waiting) hidden while b%d (%d) is shown", b, tc.waiting[b], sb, tc.waiting[sb])
					}
				}
			}
			last := strings.TrimSpace(lines[len(lines)-1])
			want := fmt.Sprintf("+%d more buckets idle", tc.conc-len(shown))
			if rest := s.Limiter.Waiting - waitingShown; rest > 0 {
				want = fmt.Sprintf("+%d more buckets, %d waiting", tc.conc-len(shown), rest)
			}
			if last != want || !strings.Contains(last, tc.more) {
				t.Errorf("last line %q, want %q; panel:\n%s", last, want, panel)
			}
			if len(shown) < 2 {
				t.Errorf("only %d buckets shown:\n%s", len(shown), panel)
			}
		})
	}
}

// TestBudgetShownOnceAndWhole: the session-start budget and its reset
// are in the header, whole, at 120, 80 and 60 columns (the backlog's title
// was cut at "budget 996/1000 …"), and not repeated in the backlog. The
// reserve shows where it fits, and always once the budget runs low.
func TestBudgetShownOnceAndWhole(t *testing.T) {
	lipglossASCII(t)
	for _, low := range []bool{false, true} {
		for _, w := range []int{120, 80, 60} {
			s := fixture()
			if low {
				s.Limiter.Budget.Remaining = 12
			}
			m := newTestModel(t, newFake(s), w, 40)
			lines := screenLines(t, m)
			budget := "identify budget 987/1000 reset 20h13m"
			if low {
				budget = "identify budget 12/1000 reset 20h13m"
			}
			if !strings.HasPrefix(lines[1], budget) || strings.Contains(lines[1], "…") {
				t.Errorf("%d columns, low %v: header line 2 %q, want it to start %q", w, low, lines[1], budget)
			}
			if wantReserve := low || w >= 120; strings.Contains(lines[1], "reserve 10") != wantReserve {
				t.Errorf("%d columns, low %v: header line 2 %q: reserve shown %v, want %v", w, low, lines[1], !wantReserve, wantReserve)
			}
			panel := strings.Join(backlogLines(t, m), "\n")
			if !strings.Contains(panel, "4 waiting") || strings.Contains(panel, "budget") || strings.Contains(panel, "reset") {
				t.Errorf("%d columns: backlog repeats the budget or lost its count:\n%s", w, panel)
			}
		}
	}
}

// tableRow returns the cells of the shard's row at 120 columns, by column title.
func tableRow(t *testing.T, m *Model, key string) map[string]string {
	t.Helper()
	lines := screenLines(t, m)
	var hdr string
	for _, l := range lines {
		if strings.Contains(l, "SHARD") && strings.Contains(l, "UPTIME") {
			hdr = l
			break
		}
	}
	if hdr == "" {
		t.Fatal("no table header with UPTIME")
	}
	for _, l := range lines {
		f := strings.Fields(strings.TrimLeft(l, ">+- "))
		if len(f) == 0 || f[0] != key {
			continue
		}
		row := map[string]string{}
		r := []rune(l)
		for _, col := range []string{"LATENCY", "EV/S", "UPTIME"} {
			// Right-aligned columns end where their title ends.
			end := len([]rune(hdr[:strings.Index(hdr, col)])) + len(col)
			start := strings.LastIndex(string(r[:end]), " ")
			row[col] = strings.TrimSpace(string(r[:end])[start:])
		}
		return row
	}
	t.Fatalf("no row for %s", key)
	return nil
}

// TestStoppedShardsShowNoStaleFigures: closed, failed and other shards
// without a live connection show "-" for EV/S, LATENCY and UPTIME, and a
// Ready shard's UPTIME counts from when it became Ready.
func TestStoppedShardsShowNoStaleFigures(t *testing.T) {
	lipglossASCII(t)
	s := fixture()
	for i := range s.Shards {
		info := &s.Shards[i]
		info.EventsPerSec, info.Latency, info.SmoothedLatency = 6, 40*time.Millisecond, 40*time.Millisecond // stale for most
		info.Uptime = 5 * time.Hour
		info.Since = t0.Add(-90 * time.Second)
	}
	m := newTestModel(t, newFake(s), 120, 40)
	cases := []struct {
		key     string
		state   gateway.State
		lat, ev string
		uptime  string
	}{
		{"0/16", gateway.StateReady, "40ms", "6.0", "1m30s"},
		{"2/16", gateway.StateResuming, "40ms", "6.0", "-"},
		{"4/16", gateway.StateQueued, "-", "-", "-"},
		{"6/16", gateway.StateConnecting, "-", "-", "-"},
		{"7/16", gateway.StateReconnecting, "-", "-", "-"},
		{"9/16", gateway.StateFailed, "-", "-", "-"},
		{"10/16", gateway.StateClosed, "-", "-", "-"},
		{"12/16", gateway.StateIdentifying, "40ms", "6.0", "-"},
	}
	for _, tc := range cases {
		row := tableRow(t, m, tc.key)
		if row["LATENCY"] != tc.lat || row["EV/S"] != tc.ev || row["UPTIME"] != tc.uptime {
			t.Errorf("%s (%s): LATENCY %q EV/S %q UPTIME %q, want %q %q %q", tc.key, tc.state, row["LATENCY"], row["EV/S"], row["UPTIME"], tc.lat, tc.ev, tc.uptime)
		}
	}
}

// TestSortByUptimeUsesTimeReady: the sort follows the UPTIME column as
// shown (time since Ready), shards without one first when ascending.
func TestSortByUptimeUsesTimeReady(t *testing.T) {
	s := bucketSnap(4, nil)
	var keep []manager.ShardInfo
	for _, info := range s.Shards {
		if info.Role == manager.RoleActive && info.Key.ID <= 2 {
			keep = append(keep, info)
		}
	}
	// 0/16: instance up 5h, Ready for 10s; 1/16: up 1h, Ready for 50m; 2/16: resuming.
	keep[0].State, keep[0].Uptime, keep[0].Since = gateway.StateReady, 5*time.Hour, t0.Add(-10*time.Second)
	keep[1].State, keep[1].Uptime, keep[1].Since = gateway.StateReady, time.Hour, t0.Add(-50*time.Minute)
	keep[2].State, keep[2].Uptime, keep[2].Since = gateway.StateResuming, 9*time.Hour, t0.Add(-time.Second)
	s.Shards = keep
	m := newTestModel(t, newFake(s), 120, 40)
	for m.sortCol != sortUptime {
		press(m, "S")
	}
	if got := keysString(shownKeys(m)); got != "2/16 0/16 1/16" {
		t.Errorf("by uptime: %s, want 2/16 0/16 1/16", got)
	}
	press(m, "I")
	if got := keysString(shownKeys(m)); got != "1/16 0/16 2/16" {
		t.Errorf("by uptime, reversed: %s, want 1/16 0/16 2/16", got)
	}
}

// TestEventLogNamesRolesInWords: the log says "(joining)", not "+3/32".
func TestEventLogNamesRolesInWords(t *testing.T) {
	lipglossASCII(t)
	f := newFake(fixture())
	k := func(id, count int) manager.ShardKey { return manager.ShardKey{ID: id, Count: count} }
	f.events <- manager.Event{Type: manager.EventState, Key: k(2, 32), Role: manager.RoleJoining, From: gateway.StateIdle, To: gateway.StateQueued, At: t0}
	f.events <- manager.Event{Type: manager.EventState, Key: k(2, 16), Role: manager.RoleRetiring, From: gateway.StateReady, To: gateway.StateClosed, At: t0}
	f.events <- manager.Event{Type: manager.EventState, Key: k(5, 16), From: gateway.StateReady, To: gateway.StateReconnecting, At: t0}
	m := newTestModel(t, f, 120, 40)
	screen := strings.Join(screenLines(t, m), "\n")
	for _, want := range []string{
		"12:00:00 shard 2/32 (joining) idle → queued",
		"12:00:00 shard 2/16 (retiring) ready → closed",
		"12:00:00 shard 5/16 ready → reconnecting",
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("log lacks %q:\n%s", want, screen)
		}
	}
	if strings.Contains(screen, "shard +") || strings.Contains(screen, "shard -") {
		t.Errorf("log still uses +/- markers:\n%s", screen)
	}
}

// TestCloseTextNamesTheCodeOnce: the gateway's reasons start with
// "close 4000 …"; the table and the log showed "4000 close 4000 …".
func TestCloseTextNamesTheCodeOnce(t *testing.T) {
	cases := []struct {
		code   int
		reason string
		want   string
	}{
		{4000, "close 4000 unknown error: resuming", "4000 unknown error: resuming"},
		{4011, "close 4011 sharding required: fatal", "4011 sharding required: fatal"},
		{4000, "close 4001 unknown opcode: resuming", "4000 close 4001 unknown opcode: resuming"}, // not the same code: kept
		{4009, "session timed out", "4009 session timed out"},
		{0, "closed by shardtop", "closed by shardtop"},
		{1000, "", "1000"},
		{0, "", "-"},
	}
	for _, tc := range cases {
		if got := closeText(tc.code, tc.reason); got != tc.want {
			t.Errorf("closeText(%d, %q) = %q, want %q", tc.code, tc.reason, got, tc.want)
		}
	}
}

// TestHeaderNarrowKeepsWholeFigures: at 80 columns and less the header
// drops the bot's name (then cuts it) and the counters rather than cutting
// figures ("latency 0.2ms avg / 0.3ms w…", "ident…"); the program's name
// goes only when even the figures alone do not fit.
func TestHeaderNarrowKeepsWholeFigures(t *testing.T) {
	lipglossASCII(t)
	s := fixture()
	s.BotUser.Username = "shardtop-sim" // the demo's name
	cases := []struct {
		w      int
		prefix string
	}{
		{120, "shardtop  @shardtop-sim  READY 6/15"},
		{80, "shardtop  @shardtop-sim  READY 6/15"},
		{76, "shardtop  @shardto…  READY 6/15"},
		{70, "shardtop  READY 6/15"},
		{60, "READY 6/15"},
	}
	for _, tc := range cases {
		m := newTestModel(t, newFake(s), tc.w, 24)
		lines := screenLines(t, m)
		if !strings.HasPrefix(lines[0], tc.prefix) || !strings.HasSuffix(lines[0], "1.25s worst") {
			t.Errorf("%d columns: header line 1 %q, want it to start %q and end with the whole latency", tc.w, lines[0], tc.prefix)
		}
		if strings.Contains(lines[1], "…") || !strings.HasPrefix(lines[1], "identify budget 987/1000 reset 20h13m") || !strings.Contains(lines[1], "  max_concurrency 4") {
			t.Errorf("%d columns: header line 2 %q", tc.w, lines[1])
		}
		if tc.w >= 120 && !strings.HasSuffix(lines[1], "identifies 21  resumes 9") {
			t.Errorf("%d columns: header lost what fits:\n%s\n%s", tc.w, lines[0], lines[1])
		}
	}
}

// TestBacklogOneLineSaysWhatIsHidden: a backlog given one line for more
// buckets than fit on it must not hide buckets silently.
func TestBacklogOneLineSaysWhatIsHidden(t *testing.T) {
	lipglossASCII(t)
	s := bucketSnap(8, map[int]int{0: 2, 2: 1, 5: 3})
	m := newTestModel(t, newFake(s), 80, 24)
	selectKey(t, m, 1, 16) // bucket 1, idle
	lines := strings.Split(m.backlog(t0).Render(80, 2), "\n")
	if len(lines) != 2 {
		t.Fatalf("backlog of %d lines, want 2:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	want := regexp.MustCompile(`^  b5 [█·]+ 3 now +» b1 [·]+ 0 free +\+6 more buckets, 3 waiting$`)
	if !want.MatchString(lines[1]) {
		t.Errorf("backlog line %q, want %s", lines[1], want)
	}
}
