package tui

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/shardtop/shardtop/manager"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// lipglossASCII renders without colours for the rest of the test.
func lipglossASCII(t testing.TB) {
	t.Helper()
	setProfile(t, termenv.Ascii)
}

func setProfile(t testing.TB, p termenv.Profile) {
	old := lipgloss.ColorProfile()
	lipgloss.SetColorProfile(p)
	t.Cleanup(func() { lipgloss.SetColorProfile(old) })
}

// goldenModel is the fixed scene of the golden views: the fixture, a
// refresh after a longer backlog, with logged events after the first n of
// the start-up.
func goldenModel(t *testing.T, w, h int, startup ...int) *Model {
	f := newFake(earlier())
	f.events = make(chan manager.Event, 256)
	if len(startup) > 0 {
		for _, ev := range startupEvents(startup[0]) {
			f.events <- ev
		}
	}
	for _, ev := range fixtureEvents() {
		f.events <- ev
	}
	m := newTestModel(t, f, w, h)
	f.mu.Lock()
	f.snap = fixture()
	f.mu.Unlock()
	m.Update(tickMsg{})
	return m
}

func TestViewGolden(t *testing.T) {
	lipglossASCII(t)
	j8 := []string{"j", "j", "j", "j", "j", "j", "j", "j"} // to 7/16, reconnecting
	cases := []struct {
		name    string
		w, h    int
		keys    []string
		startup int // start-up events logged before the fixture's
	}{
		{"view_120x40", 120, 40, nil, 0},
		{"view_80x24", 80, 24, nil, 0},
		{"view_80x24_reconnecting", 80, 24, j8, 0},
		{"view_80x24_help", 80, 24, []string{"?"}, 0},
		{"view_80x24_split_confirm", 80, 24, []string{"j", "j", "j", "j", "j", "j", "j", "j", "j", "j", "s"}, 0},
		{"view_120x40_filter_help", 120, 40, []string{"/", "!", "r", "e", "a", "d", "y", "enter", "S", "S", "?"}, 0},
		{"view_150x50", 150, 50, j8, 45},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := goldenModel(t, tc.w, tc.h, tc.startup)
			press(m, tc.keys...)
			got := m.View()
			path := filepath.Join("testdata", tc.name+".golden")
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
				t.Errorf("View differs from %s (go test -run TestViewGolden -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
			}
			if n := strings.Count(got, "\n") + 1; n != tc.h {
				t.Errorf("%d lines, want %d", n, tc.h)
			}
		})
	}
}

// BenchmarkView renders the screen of 10,000 shards in true colour.
func BenchmarkView(b *testing.B) {
	setProfile(b, termenv.TrueColor)
	f := newFake(manyShards(10000))
	m, err := New(f, WithClock(fixedClock))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	m.Update(tickMsg{})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	press(m, "G")
	b.ReportAllocs()
	for b.Loop() {
		_ = m.View()
	}
}

// BenchmarkTick pulls a 10,000-shard snapshot and re-filters and re-sorts it.
func BenchmarkTick(b *testing.B) {
	f := newFake(manyShards(10000))
	m, err := New(f, WithClock(fixedClock))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	press(m, "S", "S") // by latency: a real sort every tick
	b.ReportAllocs()
	for b.Loop() {
		m.Update(tickMsg{})
	}
}
