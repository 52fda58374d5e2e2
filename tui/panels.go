package tui

import (
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
	seg(&l2, "identifies", strconv.FormatUint(t.Identifies, 10))
	seg(&l2, "resumes", strconv.FormatUint(t.Resumes, 10))
	if t.DroppedEvents > 0 {
		seg(&l2, "dropped events", h.st.warn.Render(strconv.FormatUint(t.DroppedEvents, 10)))
	}

	if height <= 1 {
		return fit(l1.String(), width)
	}
	return fit(l1.String(), width) + "\n" + fit(l2.String(), width)
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

// backlog renders the identify queue: one line per bucket, busiest first.
type backlog struct {
	st        *styles
	lim       *limiter.Snapshot
	busy      []int // bucket indices with shards waiting, busiest first
	selBucket int   // the selected shard's bucket, -1 if none
	now       time.Time
}

// Render draws the panel in exactly height lines.
func (p backlog) Render(width, height int) string {
	if height <= 0 {
		return ""
	}
	var b strings.Builder
	title := "IDENTIFY BACKLOG"
	info := strconv.Itoa(p.lim.Waiting) + " waiting"
	if bud := &p.lim.Budget; bud.Known {
		info += "  budget " + strconv.Itoa(bud.Remaining) + "/" + strconv.Itoa(bud.Total) + " (reserve " + strconv.Itoa(bud.Reserve) + ")"
	}
	if p.lim.Window > 0 {
		info += "  window " + (p.lim.Window + p.lim.Margin).String()
	}
	if shown := height - 1; len(p.busy) > shown && shown > 0 {
		info += "  busiest " + strconv.Itoa(shown) + " of " + strconv.Itoa(len(p.busy)) + " buckets"
	}
	b.WriteString(fit(p.st.panelTitle.Render(title)+"  "+p.st.dim.Render(info), width))

	// The selected bucket is always shown, so its countdown is visible.
	show := p.busy[:min(len(p.busy), height-1)]
	selShown := p.selBucket < 0 || p.selBucket >= len(p.lim.Buckets)
	for _, i := range show {
		selShown = selShown || i == p.selBucket
	}
	maxWait := 1
	for _, i := range p.busy {
		maxWait = max(maxWait, len(p.lim.Buckets[i].Waiting))
	}
	digits := len(strconv.Itoa(max(0, len(p.lim.Buckets)-1)))
	barW := min(20, max(4, width/5))
	lines := 0
	for n, i := range show {
		if !selShown && n == len(show)-1 && n == height-2 {
			i = p.selBucket
		}
		b.WriteByte('\n')
		b.WriteString(p.bucketLine(i, width, digits, barW, maxWait))
		lines++
	}
	if !selShown && lines < height-1 {
		b.WriteByte('\n')
		b.WriteString(p.bucketLine(p.selBucket, width, digits, barW, maxWait))
		lines++
	}
	if lines == 0 && height > 1 {
		b.WriteByte('\n')
		msg := "no shard waiting to identify"
		if len(p.lim.Buckets) == 0 {
			msg = "no identify buckets yet"
		}
		b.WriteString(p.st.dim.Render(fit("  "+msg, width)))
		lines++
	}
	for ; lines < height-1; lines++ {
		b.WriteByte('\n')
	}
	return b.String()
}

func (p backlog) bucketLine(i, width, digits, barW, maxWait int) string {
	bk := &p.lim.Buckets[i]
	var b strings.Builder
	sel := i == p.selBucket
	if sel {
		b.WriteString("» ")
	} else {
		b.WriteString("  ")
	}
	label := strconv.Itoa(i)
	b.WriteByte('b')
	writeCell(&b, label, digits, false)
	b.WriteByte(' ')
	n := len(bk.Waiting)
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
	var buf []byte
	buf = strconv.AppendInt(buf, int64(n), 10)
	b.WriteByte(' ')
	writeCell(&b, string(buf), 4, true)
	b.WriteString("  next ")
	switch {
	case bk.HeadApproaching:
		b.WriteString("identifying")
	default:
		b.WriteString(string(appendCountdown(nil, bk.NextSlot.Sub(p.now))))
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
