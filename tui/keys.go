package tui

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// KeyMap is every key binding of the UI. It feeds the help: a binding that
// does not apply now (to the selected shard, or in the current mode) is
// disabled, so it does not fire and the one-line help leaves it out; the
// full help (?) lists every binding and dims the disabled ones, and pressing
// one says in the status line why it does not apply.
type KeyMap struct {
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding

	Open, Close, Resume, Restart, Split, Reshard key.Binding

	Filter, SortNext, SortReverse, ClearFilter key.Binding

	// Detail opens the selected shard's detail view (and closes it); Back
	// closes it.
	Detail, Back key.Binding

	// Confirm and Cancel answer a confirmation; Apply and Cancel end filter editing.
	Confirm, Cancel, Apply key.Binding

	Help, Quit key.Binding
	// Interrupt (ctrl+c) quits in every mode; it is not shown in the help.
	Interrupt key.Binding
}

// DefaultKeyMap returns the default bindings.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+b"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+f"), key.WithHelp("pgdn", "page down")),
		Top:      key.NewBinding(key.WithKeys("g", "home"), key.WithHelp("g", "top")),
		Bottom:   key.NewBinding(key.WithKeys("G", "end"), key.WithHelp("G", "bottom")),

		Open:    key.NewBinding(key.WithKeys("o"), key.WithHelp("o", "open")),
		Close:   key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "close")),
		Resume:  key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "resume")),
		Restart: key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "restart")),
		Split:   key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "split")),
		Reshard: key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "re-shard")),

		Filter: key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		// Short labels: the one-line help of a running shard fits 80 columns.
		SortNext:    key.NewBinding(key.WithKeys("S"), key.WithHelp("S", "sort")),
		SortReverse: key.NewBinding(key.WithKeys("I"), key.WithHelp("I", "reverse")),
		ClearFilter: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),

		Detail: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "info")),
		Back:   key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),

		Confirm: key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "confirm")),
		Cancel:  key.NewBinding(key.WithKeys("n", "N", "esc"), key.WithHelp("n/esc", "cancel")),
		Apply:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "apply")),

		Help:      key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "more")),
		Quit:      key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		Interrupt: key.NewBinding(key.WithKeys("ctrl+c")),
	}
}

// ShortHelp implements help.KeyMap: the bindings of the one-line help, in
// order; the UI shows the enabled ones and always keeps the last two (help
// and quit) on the line.
func (k KeyMap) ShortHelp() []key.Binding {
	return append(k.shortHelpHead(), k.Help, k.Quit)
}

func (k KeyMap) shortHelpHead() []key.Binding {
	return []key.Binding{
		k.Confirm, k.Cancel, k.Apply, k.Back,
		k.Open, k.Close, k.Resume, k.Restart, k.Split, k.Reshard, k.Detail,
		// I (reverse) is left to the full help: with enter, a running
		// shard's line would not fit 80 columns.
		k.Filter, k.ClearFilter, k.SortNext,
	}
}

// FullHelp implements help.KeyMap: every binding in columns (moving, shard
// actions, the view, answers to a question or the filter, the program).
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Open, k.Close, k.Resume, k.Restart, k.Split, k.Reshard},
		{k.Filter, k.ClearFilter, k.SortNext, k.SortReverse, k.Detail, k.Back},
		{k.Confirm, k.Cancel, k.Apply},
		{k.Help, k.Quit},
	}
}

// all returns every binding shown in the help, in the order of FullHelp, so
// that a key bound twice (esc) is found in its normal-mode meaning first.
func (k *KeyMap) all() []*key.Binding {
	return []*key.Binding{
		&k.Up, &k.Down, &k.PageUp, &k.PageDown, &k.Top, &k.Bottom,
		&k.Open, &k.Close, &k.Resume, &k.Restart, &k.Split, &k.Reshard,
		&k.Filter, &k.ClearFilter, &k.SortNext, &k.SortReverse, &k.Detail, &k.Back,
		&k.Confirm, &k.Cancel, &k.Apply,
		&k.Help, &k.Quit,
	}
}

// matchesDisabled reports whether msg is one of b's keys while b is
// disabled.
func matchesDisabled(msg tea.KeyMsg, b key.Binding) bool {
	if b.Enabled() {
		return false
	}
	b.SetEnabled(true) // b is a copy
	return key.Matches(msg, b)
}

// shardActions says which per-shard actions apply to a shard.
type shardActions struct{ open, close, resume, restart, split bool }

// actionsFor decides which actions apply to info. Joining and retiring
// shards belong to a running split or re-shard (and share their ID with
// another shard of a different count), so nothing applies to them.
func actionsFor(info *manager.ShardInfo) shardActions {
	if info.Role != manager.RoleActive {
		return shardActions{}
	}
	stopped := info.State == gateway.StateClosed || info.State == gateway.StateFailed
	return shardActions{
		open:    stopped,
		close:   !stopped,
		resume:  stopped && canResume(info),
		restart: !stopped,
		split:   true, // a shard Failed with 4011 is the very one to split
	}
}

// canResume reports whether a saved session exists for the shard.
func canResume(info *manager.ShardInfo) bool { return info.Resumable }
