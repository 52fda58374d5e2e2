package tui

import (
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// shardView is the detail view of one shard (enter): the detail pane in
// full (whole session ID, resume URL, counters, last close and error),
// its backlog on the bus, events/s and latency over the last minutes as
// sparklines, then its events by name beside its last state changes.
type shardView struct {
	st  *styles
	d   *manager.ShardDetail
	now time.Time
	loc *time.Location
	// busOn says the UI has a bus; shard is this shard's traffic on it
	// (nil: none seen yet).
	busOn bool
	shard *bus.ShardStats
	// remote names the node running the shard when this process has not
	// its past (a cluster): the view shows what the snapshot has and says
	// where the rest lives.
	remote string
}

// Column widths of the lower part: events by name on the left, state
// changes on the right (below each other when the terminal is narrower
// than sideBySideMin).
const (
	sideBySideMin = 64
	columnGap     = 3
	maxNameCol    = 40
)

// Render draws the view in exactly height lines.
func (v shardView) Render(width, height int) string {
	if height <= 0 || width <= 0 {
		return ""
	}
	if v.remote != "" {
		return v.renderRemote(width, height)
	}
	top := v.top(width)
	// The lists need a title and a few rows; the pane gives up its last
	// lines for them in a short terminal.
	const minLists = 4
	if over := len(top) + minLists - height; over > 0 {
		top = top[:max(1, len(top)-over)]
	}
	top = top[:min(len(top), height)]
	lines := append(make([]string, 0, height), top...)
	if rest := height - len(lines); rest > 1 {
		lines = append(lines, v.lists(width, rest)...)
	}
	var b strings.Builder
	for i, l := range lines[:min(len(lines), height)] {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	for i := len(lines); i < height; i++ {
		b.WriteByte('\n')
	}
	return b.String()
}

// renderRemote is the view of a shard another node runs: the pane in full
// from the snapshot, then where its history is.
func (v shardView) renderRemote(width, height int) string {
	lines := detailPane{st: v.st, info: &v.d.Info, now: v.now, loc: v.loc, full: true}.Lines(width)
	note := v.st.dim.Render(fit("state changes, events by name and samples: the history lives on node "+sanitize(v.remote), width))
	if len(lines) >= height {
		lines = append(lines[:max(0, height-1)], note)
	} else {
		lines = append(lines, note)
	}
	var b strings.Builder
	for i, l := range lines[:min(len(lines), height)] {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	for i := len(lines); i < height; i++ {
		b.WriteByte('\n')
	}
	return b.String()
}

// top is the pane, the bus line and the sparklines.
func (v shardView) top(width int) []string {
	info := &v.d.Info
	lines := detailPane{st: v.st, info: info, now: v.now, loc: v.loc, full: true}.Lines(width)
	if v.busOn {
		lines = append(lines, v.busLine(width))
	}
	span := time.Duration(manager.DetailSamples) * v.d.SampleEvery
	n := len(v.d.Samples)
	rates := make([]float64, n)
	lats := make([]float64, n)
	for i, s := range v.d.Samples {
		rates[i], lats[i] = s.EventsPerSec, float64(s.Latency)
	}
	var last, peak []byte
	last = appendRate(last, info.EventsPerSec)
	peak = appendRate(peak, max(maxOf(rates), info.EventsPerSec))
	lines = append(lines, v.sparkLine(width, "ev/s   ", rates, "now "+string(last)+" peak "+string(peak), span))
	last = appendLatency(last[:0], info.SmoothedLatency)
	peak = appendLatency(peak[:0], max(time.Duration(maxOf(lats)), info.SmoothedLatency))
	lines = append(lines, v.sparkLine(width, "latency", lats, "now "+string(last)+" peak "+string(peak), span))
	return lines
}

// busLine is the shard's backlog on the bus.
func (v shardView) busLine(width int) string {
	l := func(k, val string) string { return v.st.label.Render(k) + " " + val }
	s := v.shard
	if s == nil {
		return fit(l("bus", v.st.dim.Render("no events published yet")), width)
	}
	segs := []segment{{l("bus", "in flight "+strconv.Itoa(s.InFlight)), 0}}
	if s.Held {
		segs = append(segs, segment{v.st.warn.Render("held until the bus takes events again"), 0})
	}
	lost := strconv.FormatUint(s.Lost, 10)
	if s.Lost > 0 {
		lost = v.st.bad.Render(lost)
	}
	segs = append(segs, segment{l("lost", lost), 0})
	return joinSegments(segs, width)
}

// sparkLine is "ev/s    ▁▂▃▅▇█▆▅  now 12.3 peak 40 · last 5m".
func (v shardView) sparkLine(width int, label string, vals []float64, tail string, span time.Duration) string {
	tail = "  " + tail
	switch {
	case span >= time.Minute && span%time.Minute == 0:
		tail += " · last " + strconv.Itoa(int(span/time.Minute)) + "m"
	case span > 0:
		tail += " · last " + string(appendSpan(nil, span))
	}
	head := v.st.label.Render(label) + " "
	room := width - ansi.StringWidth(label) - 1 - ansi.StringWidth(tail)
	if room < 8 {
		tail = ""
		room = width - ansi.StringWidth(label) - 1
	}
	if len(vals) == 0 {
		return fit(head+v.st.dim.Render("no samples yet")+tail, width)
	}
	return fit(head+v.st.bar.Render(sparkline(vals, min(room, manager.DetailSamples)))+tail, width)
}

// sparkBlocks are the levels of a sparkline, lowest first.
var sparkBlocks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last width values, scaled to their largest, right
// aligned (the newest at the right edge): a space for a zero, at least ▁
// for anything above.
func sparkline(vals []float64, width int) string {
	if width <= 0 {
		return ""
	}
	if len(vals) > width {
		vals = vals[len(vals)-width:]
	}
	top := maxOf(vals)
	var b strings.Builder
	writeSpaces(&b, width-len(vals))
	for _, x := range vals {
		if x <= 0 || top <= 0 {
			b.WriteByte(' ')
			continue
		}
		i := int(x / top * float64(len(sparkBlocks)-1))
		b.WriteRune(sparkBlocks[min(max(i, 0), len(sparkBlocks)-1)])
	}
	return b.String()
}

func maxOf(vals []float64) float64 {
	m := 0.0
	for _, x := range vals {
		m = max(m, x)
	}
	return m
}

// lists are the events by name and the state changes, in height lines.
func (v shardView) lists(width, height int) []string {
	if width < sideBySideMin {
		evH := max(2, height/2)
		out := v.eventLines(width, evH)
		return append(out, v.changeLines(width, height-evH)...)
	}
	left := v.nameColWidth(width)
	right := width - left - columnGap
	ev, ch := v.eventLines(left, height), v.changeLines(right, height)
	out := make([]string, height)
	for i := range out {
		var b strings.Builder
		var l string
		if i < len(ev) {
			l = ev[i]
		}
		b.WriteString(l)
		writeSpaces(&b, left-ansi.StringWidth(l)+columnGap)
		if i < len(ch) {
			b.WriteString(ch[i])
		}
		out[i] = strings.TrimRight(b.String(), " ")
	}
	return out
}

// nameColWidth fits the longest name shown and its count, within reason.
func (v shardView) nameColWidth(width int) int {
	w := len("EVENTS BY NAME")
	for _, e := range v.d.Events {
		w = max(w, 2+len(e.Name)+2+len(strconv.FormatUint(e.Count, 10))+5)
	}
	return min(w, maxNameCol, width*2/5)
}

// eventLines is the title and the counts, most first, with each one's share.
func (v shardView) eventLines(width, height int) []string {
	out := []string{fit(v.st.panelTitle.Render("EVENTS BY NAME"), width)}
	evs := v.d.Events
	if len(evs) == 0 {
		return append(out, v.st.dim.Render(fit("  none yet", width)))
	}
	var total uint64
	cntW := 0
	for _, e := range evs {
		total += e.Count
		cntW = max(cntW, len(strconv.FormatUint(e.Count, 10)))
	}
	rows := height - 1
	shown := evs
	if len(evs) > rows {
		shown = evs[:max(0, rows-1)]
	}
	for _, e := range shown {
		pct := strconv.FormatUint(e.Count*100/max(total, 1), 10) + "%"
		right := " " + leftPad(strconv.FormatUint(e.Count, 10), cntW) + " " + leftPad(pct, 4)
		nameW := max(1, width-2-ansi.StringWidth(right))
		var b strings.Builder
		b.WriteString("  ")
		writeCell(&b, sanitize(e.Name), nameW, false)
		b.WriteString(right)
		out = append(out, fit(b.String(), width))
	}
	if len(shown) < len(evs) && rows > 0 {
		var rest uint64
		for _, e := range evs[len(shown):] {
			rest += e.Count
		}
		out = append(out, v.st.dim.Render(fit("  +"+strconv.Itoa(len(evs)-len(shown))+" more names, "+strconv.FormatUint(rest, 10)+" events", width)))
	}
	return out
}

func leftPad(s string, w int) string {
	if len(s) >= w {
		return s
	}
	return strings.Repeat(" ", w-len(s)) + s
}

// changeLines is the title and the state changes, newest first:
// "15:04:05 ready → reconnecting 4000 unknown error".
func (v shardView) changeLines(width, height int) []string {
	chs := v.d.Changes
	title := v.st.panelTitle.Render("STATE CHANGES") + " " + v.st.dim.Render("last "+strconv.Itoa(len(chs))+", newest first")
	out := []string{fit(title, width)}
	if len(chs) == 0 {
		return append(out, v.st.dim.Render(fit("  none yet", width)))
	}
	for i := len(chs) - 1; i >= 0 && len(out) < height; i-- {
		c := &chs[i]
		var b strings.Builder
		b.WriteString(v.st.dim.Render(c.At.In(v.loc).Format("15:04:05")))
		b.WriteByte(' ')
		b.WriteString(c.From.String())
		b.WriteString(" → ")
		b.WriteString(v.st.state(c.To).Render(c.To.String()))
		why := sanitize(c.Reason)
		if c.CloseCode != 0 {
			why = closeText(c.CloseCode, c.Reason)
		}
		if c.Err != "" && c.To == gateway.StateFailed {
			why += ": " + sanitize(c.Err)
		}
		if why != "" {
			b.WriteByte(' ')
			used := ansi.StringWidth(b.String())
			style := v.st.dim
			if c.CloseCode != 0 || c.To == gateway.StateFailed {
				style = v.st.warn
			}
			b.WriteString(style.Render(cutAtWord(why, max(1, width-used))))
		}
		out = append(out, fit(b.String(), width))
	}
	return out
}
