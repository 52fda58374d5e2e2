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

// cluster is the header's word on a clustered bot: "cluster 3 nodes, 1
// gone", or "watching cluster of 3 nodes" for a process that runs no
// shards; "" for a manager on its own.
func (h header) cluster() string {
	nodes := h.snap.Nodes
	if len(nodes) == 0 {
		return ""
	}
	watching, gone := false, 0
	for i := range nodes {
		if nodes[i].Self && nodes[i].WatchOnly {
			watching = true
		}
		if nodes[i].Gone {
			gone++
		}
	}
	n := strconv.Itoa(len(nodes)) + " nodes"
	if len(nodes) == 1 {
		n = "1 node"
	}
	v := h.st.label.Render("cluster") + " " + n
	if watching {
		v = h.st.warn.Render("watching") + " " + h.st.label.Render("cluster of") + " " + n
	}
	if gone > 0 {
		v += ", " + h.st.bad.Render(strconv.Itoa(gone)+" gone")
	}
	return v
}

// segment is one labelled figure of a header line. Figures are shown whole
// or not at all ("ident…" says nothing): when a line is too wide, the
// segments of the highest drop rank go first.
type segment struct {
	text string
	drop int // 0: always kept
}

// joinSegments lays out segs with two spaces between them, leaving out
// whole segments, highest drop rank (then rightmost) first, until the line
// fits width.
func joinSegments(segs []segment, width int) string {
	shown := make([]bool, len(segs))
	total := -2
	for i, sg := range segs {
		shown[i] = true
		total += 2 + ansi.StringWidth(sg.text)
	}
	for total > width {
		worst := -1
		for i := len(segs) - 1; i >= 0; i-- {
			if shown[i] && segs[i].drop > 0 && (worst < 0 || segs[i].drop > segs[worst].drop) {
				worst = i
			}
		}
		if worst < 0 {
			break
		}
		shown[worst] = false
		total -= 2 + ansi.StringWidth(segs[worst].text)
	}
	var b strings.Builder
	for i, sg := range segs {
		if !shown[i] {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("  ")
		}
		b.WriteString(sg.text)
	}
	return fit(b.String(), width)
}

// Render draws the header in height lines (1 or 2).
func (h header) Render(width, height int) string {
	s, t := h.snap, &h.snap.Totals
	label := func(l, v string) string { return h.st.label.Render(l) + " " + v }
	var buf []byte

	ready := strconv.Itoa(t.Ready) + "/" + strconv.Itoa(t.Total)
	switch {
	case t.Total > 0 && t.Ready == t.Total:
		ready = h.st.good.Render(ready)
	case t.Total > 0:
		ready = h.st.warn.Render(ready)
	}
	buf = appendRate(buf[:0], t.EventsPerSec)
	rate := string(buf)
	buf = appendLatency(buf[:0], t.AvgLatency)
	buf = append(buf, " avg / "...)
	buf = appendLatency(buf, t.WorstLatency)
	buf = append(buf, " worst"...)
	// The figures matter most (in a very narrow terminal the latency goes
	// whole rather than cut), then the program's name; the bot's name
	// (@name, as Discord shows a user) takes what is left, cut if need be.
	figures := joinSegments([]segment{
		{label("READY", ready), 0}, {label("ev/s", rate), 1}, {label("latency", string(buf)), 2},
	}, width)
	title := h.st.title.Render("shardtop")
	line1 := figures
	if fw := ansi.StringWidth(figures); fw+10 <= width {
		line1 = title + "  " + figures
		if name := sanitize(s.BotUser.Username); name != "" {
			room := width - fw - 10 - 2
			if room >= 5 {
				bot := fit("@"+name, room)
				line1 = title + "  " + bot + "  " + figures
			}
		}
	}
	if height <= 1 {
		return fit(line1, width)
	}

	b := &s.Limiter.Budget
	low := b.Known && (b.Remaining <= b.Reserve || b.Remaining*10 < b.Total)
	reserveDrop := 4
	if low {
		reserveDrop = 0 // it explains why shards wait
	}
	var segs []segment
	if c := h.cluster(); c != "" {
		segs = append(segs, segment{c, 0})
	}
	segs = append(segs, segment{text: label("identify budget", budgetText(h.st, b, h.now))})
	if b.Known {
		segs = append(segs, segment{label("reserve", strconv.Itoa(b.Reserve)), reserveDrop})
	}
	segs = append(segs, segment{label("max_concurrency", strconv.Itoa(s.MaxConcurrency)), 1})
	if s.RecommendedShards > 0 {
		segs = append(segs, segment{label("recommended", strconv.Itoa(s.RecommendedShards)), 2})
	}
	if t.DroppedEvents > 0 {
		segs = append(segs, segment{label("dropped events", h.st.warn.Render(strconv.FormatUint(t.DroppedEvents, 10))), 0})
	}
	segs = append(segs,
		segment{label("identifies", strconv.FormatUint(t.Identifies, 10)), 3},
		segment{label("resumes", strconv.FormatUint(t.Resumes, 10)), 3})
	return fit(line1, width) + "\n" + joinSegments(segs, width)
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

// backlog renders the identify queue: a title, then one line per bucket
// while they fit (in bucket order), else a grid of compact cells, else the
// selected shard's bucket, the busiest ones and a "+N more" line. The
// session-start budget is the header's: it is not repeated here.
type backlog struct {
	st    *styles
	lim   *limiter.Snapshot
	order []int // every bucket index, busiest first, ties by index
	// peaks is, per bucket, the most shards that waited in it since it was
	// last empty: a bar is what is left of that, so it shrinks as the
	// bucket drains (3, 2, 1 of 3) instead of staying full as a bar
	// relative to the busiest bucket did. A bucket that grows raises its
	// peak; one that empties starts again from zero.
	peaks     []int
	selBucket int              // the selected shard's bucket, -1 if none
	selKey    manager.ShardKey // the selected shard, for the » legend
	now       time.Time
}

// Render draws the panel in exactly height lines.
func (p backlog) Render(width, height int) string {
	if height <= 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(p.title(width))
	lines := 1
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

// title is the name, the waiting count, the window and what » marks,
// dropping the window, then the legend, when they do not fit.
func (p backlog) title(width int) string {
	segs := []segment{
		{p.st.panelTitle.Render("IDENTIFY BACKLOG"), 0},
		{p.st.dim.Render(strconv.Itoa(p.lim.Waiting) + " waiting"), 0},
	}
	if p.lim.Window > 0 {
		// A bucket identifies a window after its last READY: the margin is
		// only for an identify that got none (limiter doc), so not shown.
		segs = append(segs, segment{p.st.dim.Render("window ") + p.lim.Window.String(), 2})
	}
	if p.selBucket >= 0 && p.selBucket < len(p.lim.Buckets) {
		segs = append(segs, segment{"» " + p.st.dim.Render("bucket of "+p.selKey.String()), 1})
	}
	return joinSegments(segs, width)
}

// fullLines is how many lines the panel takes with a line per bucket.
func (p backlog) fullLines() int { return 1 + max(1, len(p.lim.Buckets)) }

// minLines is the fewest lines that show every bucket: the title and the
// densest grid.
func (p backlog) minLines(width int) int {
	if len(p.lim.Buckets) == 0 {
		return 2
	}
	g := p.grid(width, 0)
	return 1 + (len(p.lim.Buckets)+g.perLine-1)/g.perLine
}

// gridPlan is the shape of the compact cells: "» b0 ███··· 2 next 3.2s".
type gridPlan struct {
	perLine, barW, cellW int
	labelled             bool // "next " before the countdown
}

const (
	gridGap      = 2
	maxCellBar   = 6
	minCellBar   = 3
	countdownMax = 6 // "12m03s"
)

// grid picks the most readable cells that put every bucket in room lines:
// "next " labels first, then the longest bar; with room 0 (or when nothing
// fits) the densest.
func (p backlog) grid(width, room int) gridPlan {
	n := len(p.lim.Buckets)
	digits := len(strconv.Itoa(max(0, n-1)))
	cntW := len(strconv.Itoa(p.maxWaiting()))
	var g gridPlan
	for _, labelled := range []bool{true, false} {
		for bar := maxCellBar; bar >= minCellBar; bar-- {
			cellW := 2 + 1 + digits + 1 + bar + 1 + cntW + 1 + countdownMax
			if labelled {
				cellW += len("next ")
			}
			g = gridPlan{perLine: max(1, (width+gridGap)/(cellW+gridGap)), barW: bar, cellW: cellW, labelled: labelled}
			if room > 0 && (n+g.perLine-1)/g.perLine <= room {
				return g
			}
		}
	}
	return g
}

func (p backlog) maxWaiting() int {
	n := 0
	for i := range p.lim.Buckets {
		n = max(n, len(p.lim.Buckets[i].Waiting))
	}
	return n
}

// peak is the scale of bucket i's bar: its peak, at least what waits now.
func (p backlog) peak(i int) int {
	n := len(p.lim.Buckets[i].Waiting)
	if i < len(p.peaks) {
		n = max(n, p.peaks[i])
	}
	return max(1, n)
}

// renderBuckets writes the bucket lines (each after a newline) into room
// lines and returns how many it wrote. Every bucket gets a full line (with
// its waiting IDs) if they all fit; else they go in a grid of compact cells
// if that fits them all; else the busiest and the selected one are shown,
// with a last line for the rest.
func (p backlog) renderBuckets(b *strings.Builder, width, room int) int {
	bks := p.lim.Buckets
	digits := len(strconv.Itoa(len(bks) - 1))
	fullBar := min(20, max(4, width/5))
	if len(bks) <= room {
		for i := range bks {
			b.WriteByte('\n')
			b.WriteString(p.bucketLine(i, width, digits, fullBar))
		}
		return len(bks)
	}
	g := p.grid(width, room)
	cntW := len(strconv.Itoa(p.maxWaiting()))
	cells := func(idx []int, tail string) int {
		n := 0
		for start := 0; start < len(idx); start += g.perLine {
			b.WriteByte('\n')
			n++
			if g.perLine == 1 { // full lines read better
				b.WriteString(p.bucketLine(idx[start], width, digits, fullBar))
				continue
			}
			var line strings.Builder
			row := idx[start:min(len(idx), start+g.perLine)]
			for k, i := range row {
				c := p.bucketCell(i, digits, cntW, g)
				line.WriteString(c)
				if k < len(row)-1 || tail != "" {
					writeSpaces(&line, g.cellW-ansi.StringWidth(c)+gridGap)
				}
			}
			line.WriteString(tail)
			b.WriteString(fit(line.String(), width))
		}
		return n
	}
	if len(bks) <= room*g.perLine {
		all := make([]int, len(bks))
		for i := range all {
			all[i] = i
		}
		return cells(all, "")
	}
	// The busiest buckets, the selected one always among them so its
	// countdown is visible, and what the rest hold: on a line of its own,
	// or in the last cells' place when there is one line only.
	pickFor := func(shown int) ([]int, string) {
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
		return pick, p.st.dim.Render(more)
	}
	if room > 1 {
		pick, more := pickFor((room - 1) * g.perLine)
		n := cells(pick, "")
		b.WriteByte('\n')
		b.WriteString(fit("  "+more, width))
		return n + 1
	}
	if g.perLine == 1 {
		pick, _ := pickFor(1)
		return cells(pick, "") // the one line is the bucket's
	}
	// As many cells as leave room for the tail.
	shown := g.perLine - 1
	pick, more := pickFor(shown)
	for shown > 1 && shown*(g.cellW+gridGap)+ansi.StringWidth(more) > width {
		shown--
		pick, more = pickFor(shown)
	}
	return cells(pick, more)
}

// bucketCell is one bucket in the grid: "» b0 ███··· 2 next 3.2s".
func (p backlog) bucketCell(i, digits, cntW int, g gridPlan) string {
	bk := &p.lim.Buckets[i]
	var b strings.Builder
	p.writeBucketHead(&b, i, digits, g.barW)
	b.WriteByte(' ')
	writeCell(&b, strconv.Itoa(len(bk.Waiting)), cntW, true)
	b.WriteByte(' ')
	if g.labelled {
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
func (p backlog) writeBucketHead(b *strings.Builder, i, digits, barW int) {
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
		peak := p.peak(i)
		filled = max(1, (n*barW+peak-1)/peak)
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
func (p backlog) bucketLine(i, width, digits, barW int) string {
	bk := &p.lim.Buckets[i]
	var b strings.Builder
	p.writeBucketHead(&b, i, digits, barW)
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
