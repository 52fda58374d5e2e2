package tui

import (
	"context"
	"fmt"
	"github.com/charmbracelet/bubbles/textinput"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/manager"
)

// mode is what keys currently do.
type mode uint8

const (
	modeNormal  mode = iota
	modeFilter       // editing the filter
	modeConfirm      // a split or re-shard waits for y/n
)

// op is an action on the manager.
type op uint8

const (
	opOpen op = iota
	opClose
	opResume
	opRestart
	opSplit
	opReshard
)

var opNames = [...]struct{ verb, doing, done string }{
	opOpen:    {"open", "opening", "opened"},
	opClose:   {"close", "closing", "closed"},
	opResume:  {"resume", "resuming", "resumed"},
	opRestart: {"restart", "restarting", "restarted"},
	opSplit:   {"split", "splitting", "split"},
	opReshard: {"re-shard", "re-sharding", "re-sharded"},
}

// action is one request to the manager: op on key (arg: split count or
// re-shard count).
type action struct {
	op  op
	key manager.ShardKey
	arg int
}

func (a action) String() string {
	switch a.op {
	case opSplit:
		return "split " + a.key.String() + " into " + strconv.Itoa(a.arg)
	case opReshard:
		if a.arg == 0 {
			return "re-shard to Discord's recommendation"
		}
		return "re-shard to " + strconv.Itoa(a.arg) + " shards"
	}
	return opNames[a.op].verb + " " + a.key.String()
}

// noun names a as a thing: "split of 3/16 into 3/32, 19/32", "re-shard to
// 32 shards".
func (a action) noun() string {
	switch a.op {
	case opSplit:
		return "split of " + a.key.String() + " into " + strings.Join(splitKeys(a.key, a.arg), ", ")
	case opReshard:
		return "re-shard " + actionTarget(a)
	}
	return a.String()
}

// tickMsg asks the model to pull a snapshot.
type tickMsg struct{}

// actionDoneMsg carries the result of an action run as a tea.Cmd.
type actionDoneMsg struct {
	action action
	err    error
}

// statusKind colours the status line and says how long a message stays.
type statusKind uint8

const (
	statusNone statusKind = iota // no message
	statusInfo                   // a notice: a cancelled question, why a key does not apply
	statusBusy                   // an action runs: shown until it ends
	statusOK
	statusErr
)

// How long a status message stays before it fades (is cleared at the next
// refresh): a success says little once read, an error is worth longer.
const (
	statusOKFade   = 6 * time.Second
	statusInfoFade = 10 * time.Second
	statusErrFade  = 30 * time.Second
)

func (k statusKind) fadeAfter() time.Duration {
	switch k {
	case statusOK:
		return statusOKFade
	case statusInfo:
		return statusInfoFade
	case statusErr:
		return statusErrFade
	}
	return 0 // never
}

// Model is the root Bubble Tea model: it owns every piece of UI state.
// Make one with New; it implements tea.Model.
type Model struct {
	cfg    config
	mgr    Manager
	keys   KeyMap
	st     *styles
	help   help.Model
	ctx    context.Context
	cancel context.CancelFunc

	events      <-chan manager.Event
	unsubscribe func()
	closeOnce   sync.Once
	quitOnce    sync.Once

	width, height int

	snap    manager.Snapshot
	rows    []int32 // indices into snap.Shards after filter and sort
	sortBuf []sortItem
	shardW  int   // widest "id/count"
	nodeW   int   // widest node name in a cluster; 0 for a manager on its own
	buckets []int // every identify bucket, busiest first
	peaks   []int // per bucket, the most waiting since it was last empty

	cursor int // index into rows
	offset int // first visible row
	sel    manager.ShardKey
	hasSel bool

	sortCol sortColumn
	desc    bool
	filter  filter

	mode      mode
	input     textinput.Model // the filter being edited
	confirm   action
	filterErr error

	log     eventRing
	pending map[action]struct{}

	// detailOpen shows the selected shard's detail view (enter) instead of
	// the list; det is its detail, pulled at each refresh while open.
	// detRemote says the shard runs on another node of a cluster, whose
	// past this process does not have: det holds what the snapshot says.
	detailOpen bool
	det        manager.ShardDetail
	detRemote  bool

	// The bus's figures, pulled at each refresh (cfg.bus set), and its
	// publish rate over the last second or more.
	busStats bus.Stats
	busRate  float64
	busPrev  struct {
		published uint64
		at        time.Time
	}

	status     string
	statusKind statusKind
	statusAt   time.Time // when status was set, for its fading
	quitting   bool
}

var _ tea.Model = (*Model)(nil)

// New returns a Model over mgr. It subscribes to mgr's lifecycle events at
// once; call Close when done (Run does).
func New(mgr Manager, opts ...Option) (*Model, error) {
	if mgr == nil {
		return nil, fmt.Errorf("%w: manager is nil", ErrInvalidOption)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Model{
		cfg:     cfg,
		mgr:     mgr,
		keys:    DefaultKeyMap(),
		st:      defaultStyles(),
		help:    help.New(),
		log:     newEventRing(cfg.logSize),
		pending: make(map[action]struct{}),
		cursor:  -1,
		input:   newFilterInput(),
	}
	if cfg.keys != nil {
		m.keys = *cfg.keys
	}
	m.help.Styles.ShortKey = m.st.helpKey
	m.help.Styles.ShortDesc = m.st.helpDesc
	m.help.Styles.ShortSeparator = m.st.dim
	m.help.Styles.Ellipsis = m.st.dim
	m.ctx, m.cancel = context.WithCancel(cfg.ctx)
	m.events, m.unsubscribe = mgr.Subscribe(cfg.eventBuffer)
	m.updateKeys()
	return m, nil
}

// Close ends the event subscription and cancels the actions still running.
// It is idempotent.
func (m *Model) Close() {
	m.closeOnce.Do(func() {
		m.cancel()
		m.unsubscribe()
	})
}

// Init implements tea.Model: it pulls the first snapshot at once.
func (m *Model) Init() tea.Cmd {
	return func() tea.Msg { return tickMsg{} }
}

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.cfg.refresh, func(time.Time) tea.Msg { return tickMsg{} })
}

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.Width = msg.Width
		m.scrollToCursor()
		return m, nil
	case tickMsg:
		m.refresh()
		return m, m.tick()
	case actionDoneMsg:
		delete(m.pending, msg.action)
		// The table shows the result with the message, not a tick later.
		m.refresh()
		if msg.err != nil {
			m.setStatus(statusErr, "✗ "+msg.action.String()+": "+sanitize(msg.err.Error()))
		} else {
			m.setStatus(statusOK, "✓ "+opNames[msg.action.op].done+" "+actionTarget(msg.action))
		}
		m.updateKeys()
		return m, nil
	case tea.KeyMsg:
		return m.updateKey(msg)
	}
	return m, nil
}

func actionTarget(a action) string {
	switch a.op {
	case opSplit:
		return a.key.String() + " into " + strings.Join(splitKeys(a.key, a.arg), ", ")
	case opReshard:
		if a.arg == 0 {
			return "to Discord's recommendation"
		}
		return "to " + strconv.Itoa(a.arg) + " shards"
	}
	return a.key.String()
}

// splitKeys lists the shards a split of k makes of key: id, id+c, ... of count c*k.
func splitKeys(k manager.ShardKey, n int) []string {
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, manager.ShardKey{ID: k.ID + i*k.Count, Count: k.Count * n}.String())
	}
	return out
}

func (m *Model) updateKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	k := &m.keys
	if key.Matches(msg, k.Interrupt) {
		return m, m.quit()
	}
	switch m.mode {
	case modeConfirm:
		switch {
		case key.Matches(msg, k.Confirm):
			m.mode = modeNormal
			if m.confirm.op == opSplit && !m.isActive(m.confirm.key) {
				// The manager splits by ID: if that ID now has another count
				// (an automatic split meanwhile), it is not the shard asked about.
				m.setStatus(statusErr, "not split: "+m.confirm.key.String()+" changed while you were asked")
				m.updateKeys()
				return m, nil
			}
			cmd := m.run(m.confirm)
			m.updateKeys()
			return m, cmd
		case key.Matches(msg, k.Cancel):
			m.mode = modeNormal
			m.setStatus(statusInfo, m.confirm.noun()+" cancelled")
			m.updateKeys()
		}
		return m, nil
	case modeFilter:
		switch {
		case key.Matches(msg, k.Apply):
			f, err := parseFilter(m.input.Value())
			if err != nil {
				m.filterErr = err
				return m, nil
			}
			m.setFilter(f)
			m.mode = modeNormal
			m.updateKeys()
			return m, nil
		case key.Matches(msg, k.ClearFilter):
			m.setFilter(filter{})
			m.mode = modeNormal
			m.updateKeys()
			return m, nil
		}
		before := m.input.Value()
		var cmd tea.Cmd
		m.input, cmd = m.input.Update(msg)
		if m.input.Value() == before {
			return m, cmd
		}
		// Preview as the user types; a half-typed term keeps the last good one.
		if f, err := parseFilter(m.input.Value()); err == nil {
			m.filterErr = nil
			m.setFilter(f)
		} else {
			m.filterErr = err
		}
		return m, cmd
	}

	switch {
	case key.Matches(msg, k.Quit):
		return m, m.quit()
	case key.Matches(msg, k.Detail):
		m.detailOpen = !m.detailOpen
		m.pullDetail()
		m.updateKeys()
	case key.Matches(msg, k.Back):
		m.detailOpen = false
		m.updateKeys()
	case key.Matches(msg, k.Help):
		m.help.ShowAll = !m.help.ShowAll
		m.updateKeys()
		m.scrollToCursor()
	case key.Matches(msg, k.Up):
		m.move(-1)
	case key.Matches(msg, k.Down):
		m.move(1)
	case key.Matches(msg, k.PageUp):
		m.move(-max(1, m.visibleRows()-1))
	case key.Matches(msg, k.PageDown):
		m.move(max(1, m.visibleRows()-1))
	case key.Matches(msg, k.Top):
		m.move(-len(m.rows))
	case key.Matches(msg, k.Bottom):
		m.move(len(m.rows))
	case key.Matches(msg, k.Filter):
		m.mode = modeFilter
		m.filterErr = nil
		m.input.SetValue(m.filter.text)
		m.input.CursorEnd()
		m.updateKeys()
		return m, m.input.Focus()
	case key.Matches(msg, k.ClearFilter):
		m.setFilter(filter{})
		m.updateKeys()
	case key.Matches(msg, k.SortNext):
		m.sortCol = (m.sortCol + 1) % numSortColumns
		if m.sortCol == sortNode && m.nodeW == 0 {
			m.sortCol++ // no NODE column on its own
		}
		m.resort()
	case key.Matches(msg, k.SortReverse):
		m.desc = !m.desc
		m.resort()
	case key.Matches(msg, k.Open):
		return m, m.run(action{op: opOpen, key: m.sel})
	case key.Matches(msg, k.Close):
		return m, m.run(action{op: opClose, key: m.sel})
	case key.Matches(msg, k.Resume):
		return m, m.run(action{op: opResume, key: m.sel})
	case key.Matches(msg, k.Restart):
		return m, m.run(action{op: opRestart, key: m.sel})
	case key.Matches(msg, k.Split):
		m.ask(action{op: opSplit, key: m.sel, arg: m.cfg.splitCount})
	case key.Matches(msg, k.Reshard):
		m.ask(action{op: opReshard, arg: m.snap.RecommendedShards})
	default:
		// A key that does not apply now says why instead of doing nothing.
		for _, b := range m.keys.all() {
			if matchesDisabled(msg, *b) {
				m.setStatus(statusInfo, b.Help().Key+": "+m.whyNot(b))
				break
			}
		}
	}
	return m, nil
}

func (m *Model) quit() tea.Cmd {
	m.quitting = true
	m.quitOnce.Do(func() {
		if m.cfg.onQuit != nil {
			m.cfg.onQuit()
		}
	})
	return tea.Quit
}

func (m *Model) ask(a action) {
	m.mode = modeConfirm
	m.confirm = a
	m.updateKeys()
}

// run starts a as a tea.Cmd; Update never blocks on the manager.
func (m *Model) run(a action) tea.Cmd {
	m.pending[a] = struct{}{}
	m.setStatus(statusBusy, opNames[a.op].doing+" "+actionTarget(a)+"…")
	m.updateKeys()
	ctx, mgr := m.ctx, m.mgr
	return func() tea.Msg {
		var err error
		switch a.op {
		case opOpen:
			err = mgr.OpenShard(ctx, a.key.ID)
		case opClose:
			err = mgr.CloseShard(ctx, a.key.ID)
		case opResume:
			err = mgr.ResumeShard(ctx, a.key.ID)
		case opRestart:
			err = mgr.RestartShard(ctx, a.key.ID)
		case opSplit:
			err = mgr.SplitShard(ctx, a.key.ID, a.arg)
		case opReshard:
			err = mgr.Reshard(ctx, a.arg)
		}
		return actionDoneMsg{action: a, err: err}
	}
}

func (m *Model) setStatus(kind statusKind, text string) {
	m.statusKind, m.status, m.statusAt = kind, text, m.cfg.now()
}

// fadeStatus clears a status message that has been shown long enough.
func (m *Model) fadeStatus(now time.Time) {
	if d := m.statusKind.fadeAfter(); d > 0 && now.Sub(m.statusAt) >= d {
		m.statusKind, m.status = statusNone, ""
	}
}

// refresh pulls a snapshot, drains the events and rebuilds the rows.
func (m *Model) refresh() {
	m.mgr.SnapshotInto(&m.snap)
	m.drainEvents()
	m.fadeStatus(m.cfg.now())
	m.pullBus()
	m.updatePeaks()
	maxID, maxCount := 0, 0
	for i := range m.snap.Shards {
		maxID = max(maxID, m.snap.Shards[i].Key.ID)
		maxCount = max(maxCount, m.snap.Shards[i].Key.Count)
	}
	m.shardW = len(strconv.Itoa(maxID)) + 1 + len(strconv.Itoa(maxCount))
	m.nodeW = 0
	if len(m.snap.Nodes) > 0 {
		m.nodeW = 1 // "-" for a shard no node claims
		for i := range m.snap.Shards {
			m.nodeW = max(m.nodeW, ansi.StringWidth(sanitize(m.snap.Shards[i].Node)))
		}
	}
	if m.sortCol == sortNode && m.nodeW == 0 {
		m.sortCol = sortShard // the cluster view went away
	}
	m.rebuildBuckets()
	m.rebuildRows()
}

// busRateWindow is the least time the publish rate is measured over.
const busRateWindow = time.Second

// pullBus reads the bus's figures and, once a second, its publish rate.
func (m *Model) pullBus() {
	if m.cfg.bus == nil {
		return
	}
	m.busStats = m.cfg.bus.Stats()
	now := m.cfg.now()
	p := &m.busPrev
	switch dt := now.Sub(p.at); {
	case p.at.IsZero() || m.busStats.Published < p.published:
		p.published, p.at = m.busStats.Published, now
	case dt >= busRateWindow:
		m.busRate = float64(m.busStats.Published-p.published) / dt.Seconds()
		p.published, p.at = m.busStats.Published, now
	}
}

// pullDetail reads the selected shard's detail while the detail view is
// open; the view closes when the shard is gone.
func (m *Model) pullDetail() {
	if !m.detailOpen {
		return
	}
	m.detRemote = false
	if !m.hasSel {
		m.detailOpen = false
		return
	}
	if m.mgr.ShardDetailInto(m.sel, &m.det) {
		return
	}
	// In a cluster the shard may run on another node: its past is there,
	// what the snapshot has is shown.
	if info := m.selected(); info != nil && info.Key == m.sel && info.Node != "" {
		m.det.Info = *info
		m.det.Changes, m.det.Events, m.det.Samples = m.det.Changes[:0], m.det.Events[:0], m.det.Samples[:0]
		m.detRemote = true
		return
	}
	m.detailOpen = false
}

// busShard is the selected shard's traffic on the bus, nil if none.
func (m *Model) busShard() *bus.ShardStats {
	for i := range m.busStats.Shards {
		if s := &m.busStats.Shards[i]; s.ShardID == m.det.Info.Key.ID && s.ShardCount == m.det.Info.Key.Count {
			return s
		}
	}
	return nil
}

// selfNode is the name of this process's node in a cluster, "" if none.
func (m *Model) selfNode() string {
	for i := range m.snap.Nodes {
		if m.snap.Nodes[i].Self {
			return m.snap.Nodes[i].Name
		}
	}
	return ""
}

// watchOnly reports a process of a cluster that runs no shards itself.
func (m *Model) watchOnly() bool {
	for i := range m.snap.Nodes {
		if m.snap.Nodes[i].Self {
			return m.snap.Nodes[i].WatchOnly
		}
	}
	return false
}

// nodesPanel is the cluster's nodes panel of the current snapshot.
func (m *Model) nodesPanel(now time.Time) nodesPanel {
	return nodesPanel{st: m.st, nodes: m.snap.Nodes, now: now}
}

// busPanel is the event bus panel of the last figures.
func (m *Model) busPanel(now time.Time) busPanel {
	return busPanel{st: m.st, stats: &m.busStats, rate: m.busRate, now: now}
}

func (m *Model) drainEvents() {
	if m.events == nil {
		return
	}
	// Bounded, so a flood of events cannot starve the UI.
	for n := cap(m.events) + len(m.log.buf); n > 0; n-- {
		select {
		case ev, ok := <-m.events:
			if !ok {
				m.events = nil
				return
			}
			m.log.push(ev)
		default:
			return
		}
	}
}

// updatePeaks follows each bucket's largest backlog since it was last
// empty, the scale of its bar.
func (m *Model) updatePeaks() {
	bks := m.snap.Limiter.Buckets
	if len(m.peaks) != len(bks) {
		m.peaks = make([]int, len(bks)) // max_concurrency changed: start again
	}
	for i := range bks {
		if n := len(bks[i].Waiting); n == 0 {
			m.peaks[i] = 0
		} else {
			m.peaks[i] = max(m.peaks[i], n)
		}
	}
}

// rebuildBuckets orders the identify buckets busiest first, ties by index.
func (m *Model) rebuildBuckets() {
	m.buckets = m.buckets[:0]
	bks := m.snap.Limiter.Buckets
	for i := range bks {
		m.buckets = append(m.buckets, i)
	}
	slices.SortStableFunc(m.buckets, func(a, b int) int { return len(bks[b].Waiting) - len(bks[a].Waiting) })
}

// backlog is the identify backlog panel of the current snapshot.
func (m *Model) backlog(now time.Time) backlog {
	selBucket := -1
	var selKey manager.ShardKey
	if info := m.selected(); info != nil && m.snap.MaxConcurrency > 0 {
		selBucket, selKey = info.Bucket, info.Key
	}
	return backlog{st: m.st, lim: &m.snap.Limiter, order: m.buckets, peaks: m.peaks, selBucket: selBucket, selKey: selKey, now: now}
}

func (m *Model) setFilter(f filter) {
	m.filter = f
	m.rebuildRows()
}

func (m *Model) resort() {
	m.sortBuf = sortRows(m.rows, m.snap.Shards, m.sortCol, m.desc, m.sortBuf)
	m.followSelection()
}

// rebuildRows applies the filter and the sort, and keeps the selected shard
// selected if it is still shown.
func (m *Model) rebuildRows() {
	m.rows = m.rows[:0]
	shards := m.snap.Shards
	if m.filter.empty() {
		for i := range shards {
			m.rows = append(m.rows, int32(i))
		}
	} else {
		for i := range shards {
			if m.filter.match(&shards[i]) {
				m.rows = append(m.rows, int32(i))
			}
		}
	}
	m.sortBuf = sortRows(m.rows, shards, m.sortCol, m.desc, m.sortBuf)
	m.followSelection()
}

// followSelection moves the cursor to the selected shard's row; if it is
// gone, the cursor stays at the same place.
func (m *Model) followSelection() {
	if m.hasSel {
		for r, i := range m.rows {
			if m.snap.Shards[i].Key == m.sel {
				m.cursor = r
				m.selectRow()
				return
			}
		}
	}
	m.cursor = max(0, min(m.cursor, len(m.rows)-1))
	m.selectRow()
}

func (m *Model) move(delta int) {
	if len(m.rows) == 0 {
		return
	}
	m.cursor = max(0, min(m.cursor+delta, len(m.rows)-1))
	m.selectRow()
}

// selectRow makes the shard under the cursor the selected one.
func (m *Model) selectRow() {
	if len(m.rows) == 0 {
		m.cursor = -1
		m.hasSel = false
	} else {
		m.sel = m.snap.Shards[m.rows[m.cursor]].Key
		m.hasSel = true
	}
	m.pullDetail()
	m.scrollToCursor()
	m.updateKeys()
}

// selected returns the selected shard's info, or nil.
func (m *Model) selected() *manager.ShardInfo {
	if m.cursor < 0 || m.cursor >= len(m.rows) {
		return nil
	}
	return &m.snap.Shards[m.rows[m.cursor]]
}

func (m *Model) scrollToCursor() {
	vis := m.visibleRows()
	switch {
	case m.cursor < m.offset:
		m.offset = max(0, m.cursor)
	case m.cursor >= m.offset+vis:
		m.offset = m.cursor - vis + 1
	}
	// No empty space below the last row while rows are hidden above.
	m.offset = max(0, min(m.offset, len(m.rows)-vis))
}

// updateKeys enables the bindings that apply now: the help line shows only
// those, the full help dims the others.
func (m *Model) updateKeys() {
	k := &m.keys
	normal := m.mode == modeNormal
	for _, b := range []*key.Binding{&k.Up, &k.Down, &k.PageUp, &k.PageDown, &k.Top, &k.Bottom, &k.Help, &k.Quit} {
		b.SetEnabled(normal)
	}
	// The list's own keys wait while the detail view hides it.
	list := normal && !m.detailOpen
	for _, b := range []*key.Binding{&k.Filter, &k.SortNext, &k.SortReverse} {
		b.SetEnabled(list)
	}
	k.Detail.SetEnabled(normal && (m.detailOpen || m.selected() != nil))
	k.Back.SetEnabled(normal && m.detailOpen)
	if m.detailOpen {
		k.Detail.SetHelp("enter", "list")
	} else {
		k.Detail.SetHelp("enter", "info")
	}
	k.Confirm.SetEnabled(m.mode == modeConfirm)
	k.Cancel.SetEnabled(m.mode == modeConfirm)
	k.Apply.SetEnabled(m.mode == modeFilter)
	k.ClearFilter.SetEnabled(m.mode == modeFilter || (list && !m.filter.empty()))
	k.Interrupt.SetEnabled(true)

	var acts shardActions
	if info := m.selected(); normal && info != nil && !m.busyShard(info.Key) && !info.Busy && !m.snap.Resharding {
		acts = actionsFor(info)
	}
	k.Open.SetEnabled(acts.open)
	k.Close.SetEnabled(acts.close)
	k.Resume.SetEnabled(acts.resume)
	k.Restart.SetEnabled(acts.restart)
	k.Split.SetEnabled(acts.split)
	k.Reshard.SetEnabled(normal && !m.running(opReshard) && m.canReshard())
	if m.help.ShowAll {
		k.Help.SetHelp("?", "less")
	} else {
		k.Help.SetHelp("?", "more")
	}
}

// canReshard reports whether R applies: the manager may re-shard, nothing
// runs that would make it fail with ErrBusy, and the bot is not already at
// the recommended count (R would do nothing).
func (m *Model) canReshard() bool {
	sn := &m.snap
	if !sn.CanReshard || sn.Resharding || len(sn.Shards) == 0 {
		return false
	}
	atRecommended := sn.RecommendedShards > 0
	for i := range sn.Shards {
		si := &sn.Shards[i]
		if si.Busy || si.Role != manager.RoleActive {
			return false // a split is running
		}
		atRecommended = atRecommended && si.Key.Count == sn.RecommendedShards
	}
	return !atRecommended
}

// isActive reports whether key is an active shard in the last snapshot.
func (m *Model) isActive(key manager.ShardKey) bool {
	for i := range m.snap.Shards {
		if si := &m.snap.Shards[i]; si.Key == key {
			return si.Role == manager.RoleActive
		}
	}
	return false
}

// running reports whether an action of kind o started here still runs.
func (m *Model) running(o op) bool {
	for a := range m.pending {
		if a.op == o {
			return true
		}
	}
	return false
}

// busyShard reports whether an action started here still runs for key.
func (m *Model) busyShard(key manager.ShardKey) bool {
	for a := range m.pending {
		if a.key == key && a.op != opReshard {
			return true
		}
	}
	return false
}

// frame is the vertical layout of one screen, top to bottom.
type frame struct {
	headerH, tableH        int
	detail                 []string // the selected shard, rendered
	nodesH, backlogH, busH int
	logH                   int
	status, help           []string // rendered
	// viewH is the detail view's height when it is open (the rest of the
	// screen below the header); 0 shows the list.
	viewH int
}

const (
	panelFoldHeight  = 14 // below this many spare lines, the panels fold away
	compactHeaderMax = 11 // terminals this short get a one-line header
	minLogH          = 4  // the log's title and three events
	minDetailRest    = 6  // the detail shows when this many lines are left for it and the table
	maxStatusLines   = 3  // a long error wraps this far
)

// layout shares the height out. The table takes the rows it needs when
// they all fit, and the log grows into what is left, so no band of empty
// rows separates them; when the table overflows, the panels keep two
// fifths of the room. Tiny terminals lose the help, then the header, then
// the detail and the panels, before the table.
func (m *Model) layout() frame {
	var f frame
	w, h := m.width, m.height
	f.help = m.helpLines(w)
	f.status = m.statusLines(w)
	f.headerH = 2
	if h <= compactHeaderMax {
		f.headerH = 1
	}
	const minRest = 3 // the table's title, one row, the status line
	f.headerH = min(f.headerH, max(0, h-minRest))
	f.help = f.help[:min(len(f.help), max(0, h-f.headerH-minRest))]
	extra := max(0, h-f.headerH-len(f.help)-minRest)
	f.status = f.status[:min(len(f.status), 1+extra)]
	rest := h - f.headerH - len(f.help) - len(f.status)
	if m.detailOpen {
		f.viewH = rest
	}

	if info := m.selected(); info != nil && rest >= minDetailRest {
		f.detail = m.detail(info).Lines(w)
		f.detail = f.detail[:min(len(f.detail), rest-minDetailRest+1)]
		rest -= len(f.detail)
	}
	tableNeed := 1 + max(1, len(m.rows))
	if rest < panelFoldHeight {
		f.tableH = max(1, rest)
		return f
	}
	now := m.cfg.now()
	bl := m.backlog(now)
	full, least := bl.fullLines(), bl.minLines(w)
	busFull, busLeast := 0, 0
	if m.cfg.bus != nil {
		bp := m.busPanel(now)
		busFull, busLeast = bp.fullLines(), bp.minLines()
	}
	nodesFull, nodesLeast := 0, 0
	if len(m.snap.Nodes) > 0 {
		np := m.nodesPanel(now)
		nodesFull, nodesLeast = np.fullLines(), np.minLines()
	}
	if tableNeed+nodesFull+full+busFull+minLogH <= rest {
		f.tableH, f.nodesH, f.backlogH, f.busH = tableNeed, nodesFull, full, busFull
	} else {
		panels := max(nodesLeast+least+busLeast+minLogH, rest*2/5)
		f.tableH = max(2, min(tableNeed, rest-panels))
		panels = rest - f.tableH
		f.backlogH = least
		if full <= panels/2 {
			f.backlogH = full
		}
		f.backlogH = max(2, min(f.backlogH, panels/2))
		// The bus panel takes what the log can spare, the log keeping its least.
		f.busH = min(busFull, max(busLeast, panels-f.backlogH-minLogH))
		f.busH = max(0, min(f.busH, panels-f.backlogH))
		// So do the nodes, after the bus.
		f.nodesH = min(nodesFull, max(nodesLeast, panels-f.backlogH-f.busH-minLogH))
		f.nodesH = max(0, min(f.nodesH, panels-f.backlogH-f.busH))
	}
	f.logH = rest - f.tableH - f.nodesH - f.backlogH - f.busH
	return f
}

// detail is the selected shard's detail pane.
func (m *Model) detail(info *manager.ShardInfo) detailPane {
	return detailPane{st: m.st, info: info, now: m.cfg.now(), loc: m.cfg.loc}
}

// visibleRows is how many shard rows the table shows.
func (m *Model) visibleRows() int {
	if m.height == 0 {
		return 1
	}
	return max(1, m.layout().tableH-1)
}

// View implements tea.Model.
func (m *Model) View() string {
	if m.quitting || m.width <= 0 || m.height <= 0 {
		return ""
	}
	f := m.layout()
	now := m.cfg.now()
	var b strings.Builder
	b.Grow(m.width * m.height * 2)
	line := func(s string) {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(s)
	}

	if f.headerH > 0 {
		line(header{st: m.st, snap: &m.snap, now: now}.Render(m.width, f.headerH))
	}
	if f.viewH > 0 {
		sv := shardView{st: m.st, d: &m.det, now: now, loc: m.cfg.loc, busOn: m.cfg.bus != nil, shard: m.busShard()}
		if node := m.det.Info.Node; node != "" && node != m.selfNode() {
			sv.busOn, sv.shard = false, nil // the bus figures are this node's
		}
		if m.detRemote {
			sv.remote = m.det.Info.Node
		}
		line(sv.Render(m.width, f.viewH))
		for _, l := range f.status {
			line(l)
		}
		for _, l := range f.help {
			line(l)
		}
		return b.String()
	}
	empty := "no shards yet"
	if len(m.snap.Shards) > 0 {
		empty = "no shard matches the filter " + strconv.Quote(m.filter.text)
	}
	line(shardTable{
		st: m.st, shards: m.snap.Shards, rows: m.rows, offset: m.offset, cursor: m.cursor,
		sortCol: m.sortCol, desc: m.desc, shardW: m.shardW, nodeW: m.nodeW, empty: empty, now: now,
	}.Render(m.width, f.tableH))
	for _, l := range f.detail {
		line(l)
	}
	if f.nodesH > 0 {
		line(m.nodesPanel(now).Render(m.width, f.nodesH))
	}
	if f.backlogH > 0 {
		line(m.backlog(now).Render(m.width, f.backlogH))
	}
	if f.busH > 0 {
		line(m.busPanel(now).Render(m.width, f.busH))
	}
	if f.logH > 0 {
		line(logPane{st: m.st, log: &m.log, loc: m.cfg.loc}.Render(m.width, f.logH))
	}
	for _, l := range f.status {
		line(l)
	}
	for _, l := range f.help {
		line(l)
	}
	return b.String()
}

// statusLines is the prompt, the filter input, or the last action's result,
// with the filter and row position on the right. A message too long for
// its line (an error) wraps onto up to maxStatusLines lines.
func (m *Model) statusLines(w int) []string {
	switch m.mode {
	case modeConfirm:
		return []string{fit(m.st.prompt.Render(m.confirmPrompt()+" [y/n]"), w)}
	case modeFilter:
		// Not sanitized: the view holds the cursor's styling, and the
		// text input keeps control characters out of its value.
		line := m.input.View()
		if m.input.Value() == "" {
			hint := " 3  3/16  10-20  ready  !ready  joining"
			if len(m.snap.Nodes) > 0 {
				hint += "  node:" + sanitize(m.snap.Nodes[0].Name)
			}
			line += m.st.dim.Render(hint)
		}
		if m.filterErr != nil {
			line += "  " + m.st.statusErr.Render(sanitize(m.filterErr.Error()))
		}
		return []string{fit(line, w)}
	}
	var right strings.Builder
	if !m.filter.empty() {
		right.WriteString("filter " + sanitize(m.filter.text) + " · ")
	}
	right.WriteString(strconv.Itoa(len(m.rows)))
	right.WriteString(" of ")
	right.WriteString(strconv.Itoa(len(m.snap.Shards)))
	right.WriteString(" shards")
	if n := len(m.pending); n > 0 {
		right.WriteString(" · ")
		right.WriteString(strconv.Itoa(n))
		right.WriteString(" running")
	}
	r := m.st.dim.Render(right.String())
	rw := ansi.StringWidth(r)
	style := lipgloss.NewStyle()
	switch m.statusKind {
	case statusOK:
		style = m.st.statusOK
	case statusErr:
		style = m.st.statusErr
	case statusBusy:
		style = m.st.statusBusy
	}
	text := m.status
	switch tw := ansi.StringWidth(text); {
	case tw+2+rw <= w:
		left := style.Render(text)
		return []string{left + strings.Repeat(" ", w-rw-tw) + r}
	case tw <= w:
		// The message matters more than the position while it shows.
		return []string{style.Render(text)}
	}
	// Too long even for the full width (an error): it wraps.
	var lines []string
	for _, l := range strings.Split(ansi.Wrap(text, w, " "), "\n") {
		lines = append(lines, style.Render(l))
	}
	if len(lines) > maxStatusLines {
		lines = append(lines[:maxStatusLines-1], fit(strings.Join(lines[maxStatusLines-1:], " "), w))
	}
	return lines
}

// statusLine is the first line of the status (tests).
func (m *Model) statusLine() string { return m.statusLines(m.width)[0] }

func (m *Model) confirmPrompt() string {
	a := m.confirm
	switch a.op {
	case opSplit:
		return "Split " + a.key.String() + " into " + strings.Join(splitKeys(a.key, a.arg), ", ") + "?"
	case opReshard:
		active := strconv.Itoa(m.snap.Totals.Total)
		if a.arg == 0 {
			return "Re-shard all " + active + " active shards to Discord's current recommendation?"
		}
		return "Re-shard all " + active + " active shards to " + strconv.Itoa(a.arg) + " (Discord's recommendation)?"
	}
	return a.String() + "?"
}

// maxFilterLen bounds the filter text.
const maxFilterLen = 200

// newFilterInput is the one-line field of the '/' filter.
func newFilterInput() textinput.Model {
	in := textinput.New()
	in.Prompt = "/"
	in.CharLimit = maxFilterLen
	return in
}
