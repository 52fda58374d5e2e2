package tui

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// styles holds every style of the UI; nothing else in the package builds one.
type styles struct {
	title       lipgloss.Style
	dim         lipgloss.Style
	label       lipgloss.Style
	good        lipgloss.Style
	warn        lipgloss.Style
	bad         lipgloss.Style
	tableHeader lipgloss.Style
	selected    lipgloss.Style
	panelTitle  lipgloss.Style
	bar         lipgloss.Style
	barSelected lipgloss.Style
	statusOK    lipgloss.Style
	statusErr   lipgloss.Style
	statusBusy  lipgloss.Style
	prompt      lipgloss.Style
	helpKey     lipgloss.Style
	helpDesc    lipgloss.Style
	helpOff     lipgloss.Style // a binding that does not apply now
	detailKey   lipgloss.Style
	states      [gateway.StateFailed + 1]lipgloss.Style
	roles       [manager.RoleRetiring + 1]lipgloss.Style

	// cells caches the STATE cells (styled, padded): rendering a style is
	// the most expensive part of drawing a row.
	cells struct {
		width   int
		profile termenv.Profile
		text    [gateway.StateFailed + 1]string
	}
}

var (
	colorGreen  = lipgloss.AdaptiveColor{Light: "28", Dark: "42"}
	colorYellow = lipgloss.AdaptiveColor{Light: "136", Dark: "220"}
	colorBlue   = lipgloss.AdaptiveColor{Light: "25", Dark: "39"}
	colorCyan   = lipgloss.AdaptiveColor{Light: "30", Dark: "51"}
	colorRed    = lipgloss.AdaptiveColor{Light: "160", Dark: "203"}
	colorGrey   = lipgloss.AdaptiveColor{Light: "245", Dark: "243"}
	colorAccent = lipgloss.AdaptiveColor{Light: "93", Dark: "141"}
	colorFaint  = lipgloss.AdaptiveColor{Light: "251", Dark: "239"}
	colorSoft   = lipgloss.AdaptiveColor{Light: "238", Dark: "250"}
)

func defaultStyles() *styles {
	s := &styles{
		title:       lipgloss.NewStyle().Bold(true).Foreground(colorAccent),
		dim:         lipgloss.NewStyle().Foreground(colorGrey),
		label:       lipgloss.NewStyle().Foreground(colorGrey),
		good:        lipgloss.NewStyle().Foreground(colorGreen),
		warn:        lipgloss.NewStyle().Foreground(colorYellow),
		bad:         lipgloss.NewStyle().Foreground(colorRed).Bold(true),
		tableHeader: lipgloss.NewStyle().Bold(true).Underline(true),
		selected:    lipgloss.NewStyle().Reverse(true),
		panelTitle:  lipgloss.NewStyle().Bold(true).Foreground(colorAccent),
		bar:         lipgloss.NewStyle().Foreground(colorBlue),
		barSelected: lipgloss.NewStyle().Foreground(colorYellow).Bold(true),
		statusOK:    lipgloss.NewStyle().Foreground(colorGreen),
		statusErr:   lipgloss.NewStyle().Foreground(colorRed).Bold(true),
		statusBusy:  lipgloss.NewStyle().Foreground(colorYellow),
		prompt:      lipgloss.NewStyle().Bold(true).Foreground(colorYellow),
		helpKey:     lipgloss.NewStyle().Bold(true),
		helpDesc:    lipgloss.NewStyle().Foreground(colorSoft),
		helpOff:     lipgloss.NewStyle().Foreground(colorFaint),
		detailKey:   lipgloss.NewStyle().Bold(true),
	}
	st := func(c lipgloss.TerminalColor) lipgloss.Style { return lipgloss.NewStyle().Foreground(c) }
	s.states[gateway.StateIdle] = st(colorGrey)
	s.states[gateway.StateQueued] = st(colorBlue)
	s.states[gateway.StateConnecting] = st(colorYellow)
	s.states[gateway.StateIdentifying] = st(colorYellow)
	s.states[gateway.StateResuming] = st(colorYellow)
	s.states[gateway.StateReady] = st(colorGreen).Bold(true)
	s.states[gateway.StateReconnecting] = st(colorCyan)
	s.states[gateway.StateClosed] = st(colorGrey)
	s.states[gateway.StateFailed] = st(colorRed).Bold(true)
	s.roles[manager.RoleActive] = lipgloss.NewStyle()
	s.roles[manager.RoleJoining] = st(colorCyan).Bold(true)
	s.roles[manager.RoleRetiring] = st(colorGrey)
	return s
}

// state returns the style of a shard state (unknown states render plain).
func (s *styles) state(st gateway.State) lipgloss.Style {
	if int(st) < len(s.states) {
		return s.states[st]
	}
	return lipgloss.NewStyle()
}

// stateCell returns the state's name padded to width and styled.
func (s *styles) stateCell(st gateway.State, width int) string {
	var b strings.Builder
	if int(st) >= len(s.cells.text) {
		writeCell(&b, st.String(), width, false)
		return s.state(st).Render(b.String())
	}
	c := &s.cells
	if p := lipgloss.ColorProfile(); c.width != width || c.profile != p {
		c.width, c.profile = width, p
		for i := range c.text {
			b.Reset()
			writeCell(&b, gateway.State(i).String(), width, false)
			c.text[i] = s.states[i].Render(b.String())
		}
	}
	return c.text[st]
}

// role returns the style of a shard's role marker.
func (s *styles) role(r manager.Role) lipgloss.Style {
	if int(r) < len(s.roles) {
		return s.roles[r]
	}
	return lipgloss.NewStyle()
}
