package tui

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
)

// strayEscape is a control sequence that lost its ESC and shows as text:
// "[7m", "[0m", "[2J".
var strayEscape = regexp.MustCompile(`(?:^|[^\x1b])(\[[0-9;:]*[mJKH])`)

// checkNoStrayEscapes fails on escape-sequence debris or raw control
// characters (other than newlines) in a rendered view.
func checkNoStrayEscapes(t *testing.T, v string) {
	t.Helper()
	if loc := strayEscape.FindStringSubmatchIndex(v); loc != nil {
		from, to := max(0, loc[2]-30), min(len(v), loc[3]+30)
		t.Errorf("stray %q in the view, near %q", v[loc[2]:loc[3]], ansi.Strip(v[from:to]))
	}
	for i, r := range ansi.Strip(v) {
		if r != '\n' && unicode.IsControl(r) {
			t.Errorf("control character %U at %d of the view", r, i)
			break
		}
	}
}

// TestViewHasNoStrayEscapeText renders every mode in every colour profile
// and fails on any "[7m"-like text: the filter prompt printed the text
// input's cursor styling with its ESC stripped ("/3 [7m  [0m").
func TestViewHasNoStrayEscapeText(t *testing.T) {
	scenes := []struct {
		name  string
		setup func(t *testing.T, m *Model)
	}{
		{"normal", func(*testing.T, *Model) {}},
		{"full help", func(_ *testing.T, m *Model) { press(m, "?") }},
		{"filter empty", func(_ *testing.T, m *Model) { press(m, "/") }},
		{"filter typed", func(_ *testing.T, m *Model) { press(m, "/", "3") }},
		{"filter bad term", func(_ *testing.T, m *Model) { press(m, "/", "x") }},
		{"filter full help", func(_ *testing.T, m *Model) { press(m, "?", "/", "1") }},
		{"filter applied", func(_ *testing.T, m *Model) { press(m, "/", "1", "enter") }},
		{"split question", func(t *testing.T, m *Model) { selectKey(t, m, 9, 16); press(m, "s") }},
		{"disabled key", func(t *testing.T, m *Model) { selectKey(t, m, 0, 16); press(m, "o") }},
		{"action running", func(t *testing.T, m *Model) { selectKey(t, m, 0, 16); press(m, "c") }},
		{"evil reason selected", func(t *testing.T, m *Model) { selectKey(t, m, 15, 16) }},
	}
	profiles := []termenv.Profile{termenv.Ascii, termenv.ANSI, termenv.ANSI256, termenv.TrueColor}
	for _, p := range profiles {
		for _, size := range [][2]int{{80, 24}, {150, 50}, {40, 12}} {
			for _, sc := range scenes {
				t.Run(fmt.Sprintf("profile%d/%dx%d/%s", p, size[0], size[1], strings.ReplaceAll(sc.name, " ", "_")), func(t *testing.T) {
					setProfile(t, p)
					m := goldenModel(t, size[0], size[1])
					sc.setup(t, m)
					checkNoStrayEscapes(t, m.View())
				})
			}
		}
	}
}
