package tui

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/limiter"
	"github.com/shardtop/shardtop/manager"
)

// header renders the summary lines above the table.
type header struct {
	st   *styles
	snap *manager.Snapshot
	now  time.Time
}

// Render draws the header in height lines (1 or 2).
func (h header) Render(width, height int) string {
	s, t := h.snap, &h.snap.Totals
	var buf []byte
	seg := func(b *strings.Builder, label, value string) {
		if b.Len() > 0 {
			b.WriteString("  ")
		}
		if label != "" {
			b.WriteString(h.st.label.Render(label))
			b.WriteByte(' ')
		}
		b.WriteString(value)
	}

	var l1 strings.Builder
	l1.WriteString(h.st.title.Render("shardtop"))
	bot := "-"
	if s.BotUser.Username != "" {
		bot = sanitize(s.BotUser.Username)
	}
	seg(&l1, "bot", bot)
	ready := strconv.Itoa(t.Ready) + "/" + strconv.Itoa(t.Total)
	switch {
	case t.Total > 0 && t.Ready == t.Total:
		ready = h.st.good.Render(ready)
	case t.Total > 0:
		ready = h.st.warn.Render(ready)
	}
	seg(&l1, "READY", ready)
	buf = appendRate(buf[:0], t.EventsPerSec)
	seg(&l1, "ev/s", string(buf))
	buf = appendLatency(buf[:0], t.AvgLatency)
	buf = append(buf, " avg / "...)
	buf = appendLatency(buf, t.WorstLatency)
	buf = append(buf, " worst"...)
	seg(&l1, "latency", string(buf))

	var l2 strings.Builder
	seg(&l2, "identify budget", budgetText(h.st, &s.Limiter.Budget, h.now))
	seg(&l2, "max_concurrency", strconv.Itoa(s.MaxConcurrency))
	if s.RecommendedShards > 0 {
		seg(&l2, "recommended", strconv.Itoa(s.RecommendedShards))
	}
	if t.DroppedEvents > 0 {
		seg(&l2, "dropped events", h.st.warn.Render(strconv.FormatUint(t.DroppedEvents, 10)))
	}
	// The counters come last and only whole: "ident…" says nothing.
	for _, c := range [...]struct {
		label string
		n     uint64
	}{{"identifies", t.Identifies}, {"resumes", t.Resumes}} {
		v := strconv.FormatUint(c.n, 10)
		if ansi.StringWidth(l2.String())+2+len(c.label)+1+len(v) > width {
			break
		}
		seg(&l2, c.label, v)
	}

	line1 := l1.String()
	if ansi.StringWidth(line1) > width {
		// Narrow: the figures matter more than the program's name.
		line1 = strings.TrimPrefix(line1, h.st.title.Render("shardtop")+"  ")
	}
	if height <= 1 {
		return fit(line1, width)
	}
	return fit(line1, width) + "\n" + fit(l2.String(), width)
}

// budgetText is "995/1000, resets in 23h59m" with a warning colour when
// the budget runs low.
func budgetText(st *styles, b *limiter.BudgetSnapshot, now time.Time) string {
	if !b.Known {
		return "unknown"
	}
	v := strconv.Itoa(b.Remaining) + "/" + strconv.Itoa(b.Total)
	switch {
	case b.Remaining <= b.Reserve:
		v = st.bad.Render(v)
	case b.Remaining*10 < b.Total:
		v = st.warn.Render(v)
	}
	if !b.ResetAt.IsZero() {
		v += " reset " + string(appendCountdown(nil, b.ResetAt.Sub(now)))
	}
	return v
}

// backlog renders the identify queue: a title with the session-start
// budget, then one line per bucket while they fit (in bucket order), else
// the selected shard's bucket, the busiest ones and a "+N more" line.
type backlog struct {
	st        *styles
	lim       *limiter.Snapshot
	order     []int // every bucket index, busiest first, ties by index
	selBucket int   // the selected shard's bucket, -1 if none
	now       time.Time
}

// titleLines is how many lines the title takes at width: one when the
// budget fits beside the panel's name, else two.
func (p backlog) titleLines(width int) int {
	if _, l2 := p.title(width); l2 != "" {
		return 2
	}
	return 1
}

// title lays out the name, the waiting count, the budget and the window:
// all on one line if they fit, the window dropped if that makes the budget
// fit, else the budget on a line of its own (l2).
func (p backlog) title(width int) (l1, l2 string) {
	name := p.st.panelTitle.Render("IDENTIFY BACKLOG")
	waiting := p.st.dim.Render(strconv.Itoa(p.lim.Waiting) + " waiting")
	window := ""
	if p.lim.Window > 0 {
		window = p.st.dim.Render("window ") + (p.lim.Window + p.lim.Margin).String()
	}
	budget := p.budgetText()
	join := func(parts ...string) string {
		var b strings.Builder
		for _, s := range parts {
			if s == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("  ")
			}
			b.WriteString(s)
		}
		return b.String()
	}
	if all := join(name, waiting, budget, window); ansi.StringWidth(all) <= width {
		return all, ""
	}
	if short := join(name, waiting, budget); ansi.StringWidth(short) <= width {
		return short, ""
	}
	return fit(join(name, waiting, window), width), fit(budget, width)
}

// budgetText is "budget 996/1000  reserve 10  reset 23h59m", the figures
// coloured when the budget runs low.
func (p backlog) budgetText() string {
	b := &p.lim.Budget
	label := func(s string) string { return p.st.dim.Render(s + " ") }
	if !b.Known {
		return label("budget") + "unknown"
	}
	v := strconv.Itoa(b.Remaining) + "/" + strconv.Itoa(b.Total)
	switch {
	case b.Remaining <= b.Reserve:
		v = p.st.bad.Render(v)
	case b.Remaining*10 < b.Total:
		v = p.st.warn.Render(v)
	}
	s := label("budget") + v + "  " + label("reserve") + strconv.Itoa(b.Reserve)
	if !b.ResetAt.IsZero() {
		s += "  " + label("reset") + string(appendCountdown(nil, b.ResetAt.Sub(p.now)))
	}
	return s
}

// Render draws the panel in exactly height lines.
func (p backlog) Render(width, height int) string {
	if height <= 0 {
		return ""
	}
	var b strings.Builder
	l1, l2 := p.title(width)
	b.WriteString(l1)
	lines := 1
	// With two lines only, a bucket says more than the budget (which the
	// header shows too).
	if l2 != "" && height >= 3 {
		b.WriteByte('\n')
		b.WriteString(l2)
		lines++
	}
	room := height - lines
	bks := p.lim.Buckets
	switch {
	case room <= 0:
	case len(bks) == 0:
		b.WriteByte('\n')
		b.WriteString(p.st.dim.Render(fit("  no identify buckets yet", width)))
		lines++
	default:
		lines += p.renderBuckets(&b, width, room)
	}
	for ; lines < height; lines++ {
		b.WriteByte('\n')
	}
	return b.String()
}

// compactBar is the bar width of a bucket in the grid.
const compactBar = 6

// renderBuckets writes the bucket lines (each after a newline) into room
// lines and returns how many it wrote. Every bucket gets a full line (with
// its waiting IDs) if they all fit; else they go in a grid of compact cells
// if that fits them all; else the busiest and the selected one are shown,
// with a last line for the rest.
func (p backlog) renderBuckets(b *strings.Builder, width, room int) int {
	bks := p.lim.Buckets
	maxWait := 1
	for i := range bks {
		maxWait = max(maxWait, len(bks[i].Waiting))
	}
	digits := len(strconv.Itoa(len(bks) - 1))
	if len(bks) <= room {
		barW := min(20, max(4, width/5))
		for i := range bks {
			b.WriteByte('\n')
			b.WriteString(p.bucketLine(i, width, digits, barW, maxWait))
		}
		return len(bks)
	}
	// A compact cell: "» b0 ███··· 2 next 3.2s", without "next " if
	// that puts more cells on a line.
	cntW := len(strconv.Itoa(maxWait))
	const gap = 2
	cellW := 2 + 1 + digits + 1 + compactBar + 1 + cntW + 1 + 6
	perLine := max(1, (width+gap)/(cellW+gap))
	labelled := (width+gap)/(cellW+len("next ")+gap) == perLine
	if labelled {
		cellW += len("next ")
	}
	if perLine == 1 {
		cellW = 0 // full lines read better
	}
	cells := func(idx []int, tail string) int {
		n := 0
		for start := 0; start < len(idx); start += perLine {
			b.WriteByte('\n')
			n++
			if perLine == 1 {
				b.WriteString(p.bucketLine(idx[start], width, digits, min(20, max(4, width/5)), maxWait))
				continue
			}
			var line strings.Builder
			row := idx[start:min(len(idx), start+perLine)]
			for k, i := range row {
				c := p.bucketCell(i, digits, cntW, maxWait, labelled)
				line.WriteString(c)
				if k < len(row)-1 || tail != "" {
					writeSpaces(&line, cellW-ansi.StringWidth(c)+gap)
				}
			}
			line.WriteString(tail)
			b.WriteString(fit(line.String(), width))
		}
		return n
	}
	if len(bks) <= room*perLine {
		all := make([]int, len(bks))
		for i := range all {
			all[i] = i
		}
		return cells(all, "")
	}
	// The busiest buckets, the selected one always among them so its
	// countdown is visible, and what the rest hold: on a line of its own,
	// or in the last cell's place when there is one line only.
	shown := (room - 1) * perLine
	if room == 1 {
		shown = max(1, perLine-1)
	}
	pick := slices.Clone(p.order[:shown])
	if p.selBucket >= 0 && p.selBucket < len(bks) && !slices.Contains(pick, p.selBucket) {
		pick[len(pick)-1] = p.selBucket
	}
	shownWaiting := 0
	for _, i := range pick {
		shownWaiting += len(bks[i].Waiting)
	}
	more := "+" + strconv.Itoa(len(bks)-len(pick)) + " more buckets"
	if rest := p.lim.Waiting - shownWaiting; rest > 0 {
		more += ", " + strconv.Itoa(rest) + " waiting"
	} else {
		more += " idle"
	}
	more = p.st.dim.Render(more)
	if room == 1 {
		if perLine == 1 {
			more = "" // the one line is the bucket's
		}
		return cells(pick, more)
	}
	n := cells(pick, "")
	b.WriteByte('\n')
	b.WriteString(fit("  "+more, width))
	return n + 1
}

// bucketCell is one bucket in the grid: "» b0 ███··· 2 next 3.2s".
func (p backlog) bucketCell(i, digits, cntW, maxWait int, labelled bool) string {
	bk := &p.lim.Buckets[i]
	var b strings.Builder
	p.writeBucketHead(&b, i, digits, compactBar, maxWait)
	b.WriteByte(' ')
	writeCell(&b, strconv.Itoa(len(bk.Waiting)), cntW, true)
	b.WriteByte(' ')
	if labelled {
		b.WriteString("next ")
	}
	if bk.HeadApproaching {
		b.WriteString("ident")
	} else {
		b.WriteString(p.nextText(bk))
	}
	return b.String()
}

// writeBucketHead writes the marker, the name and the bar of bucket i.
func (p backlog) writeBucketHead(b *strings.Builder, i, digits, barW, maxWait int) {
	sel := i == p.selBucket
	if sel {
		b.WriteString("» ")
	} else {
		b.WriteString("  ")
	}
	b.WriteByte('b')
	writeCell(b, strconv.Itoa(i), digits, false)
	b.WriteByte(' ')
	n := len(p.lim.Buckets[i].Waiting)
	filled := 0
	if n > 0 {
		filled = max(1, (n*barW+maxWait-1)/maxWait)
	}
	barStyle := p.st.bar
	if sel {
		barStyle = p.st.barSelected
	}
	b.WriteString(barStyle.Render(strings.Repeat("█", filled)))
	b.WriteString(p.st.dim.Render(strings.Repeat("·", barW-filled)))
}

// nextText is the countdown to the bucket's next slot: "3.2s", "now" when
// shards wait and the slot is open, "free" when none waits.
func (p backlog) nextText(bk *limiter.BucketSnapshot) string {
	left := bk.NextSlot.Sub(p.now)
	if len(bk.Waiting) == 0 && left <= 0 {
		return "free"
	}
	return string(appendCountdown(nil, left))
}

// bucketLine is one bucket on a line: "» b0 █████···    2  next 3.2s  8 4".
func (p backlog) bucketLine(i, width, digits, barW, maxWait int) string {
	bk := &p.lim.Buckets[i]
	var b strings.Builder
	p.writeBucketHead(&b, i, digits, barW, maxWait)
	n := len(bk.Waiting)
	b.WriteByte(' ')
	writeCell(&b, strconv.Itoa(n), 4, true)
	b.WriteString("  next ")
	if bk.HeadApproaching {
		b.WriteString("identifying")
	} else {
		b.WriteString(p.nextText(bk))
	}
	if n > 0 {
		b.WriteString("  ")
		// The waiting IDs, as many as fit.
		room := width - ansi.StringWidth(b.String())
		var ids []byte
		for k, id := range bk.Waiting {
			next := strconv.AppendInt(nil, int64(id), 10)
			if len(ids)+len(next)+1 > room-2 {
				ids = append(ids, "…"...)
				break
			}
			if k > 0 {
				ids = append(ids, ' ')
			}
			ids = append(ids, next...)
		}
		b.Write(ids)
	}
	return fit(b.String(), width)
}
