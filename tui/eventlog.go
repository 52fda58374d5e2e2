package tui

import (
	"strconv"
	"strings"
	"time"

	"github.com/shardtop/shardtop/manager"
)

// eventRing keeps the most recent lifecycle events.
type eventRing struct {
	buf   []manager.Event
	start int // oldest
	n     int
}

func newEventRing(size int) eventRing { return eventRing{buf: make([]manager.Event, size)} }

func (r *eventRing) push(ev manager.Event) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = ev
		r.n++
		return
	}
	r.buf[r.start] = ev
	r.start = (r.start + 1) % len(r.buf)
}

// len returns how many events are kept.
func (r *eventRing) len() int { return r.n }

// at returns the i-th kept event, oldest first.
func (r *eventRing) at(i int) *manager.Event { return &r.buf[(r.start+i)%len(r.buf)] }

// logPane renders the newest events, newest at the bottom.
type logPane struct {
	st  *styles
	log *eventRing
	loc *time.Location
}

// Render draws the pane in exactly height lines.
func (p logPane) Render(width, height int) string {
	if height <= 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(fit(p.st.panelTitle.Render("EVENTS")+"  "+p.st.dim.Render(strconv.Itoa(p.log.len())+" kept"), width))
	rows := height - 1
	first := max(0, p.log.len()-rows)
	lines := 0
	for i := first; i < p.log.len(); i++ {
		b.WriteByte('\n')
		b.WriteString(fit(p.eventLine(p.log.at(i)), width))
		lines++
	}
	if lines == 0 && rows > 0 {
		b.WriteByte('\n')
		b.WriteString(p.st.dim.Render(fit("  no events yet", width)))
		lines++
	}
	for ; lines < rows; lines++ {
		b.WriteByte('\n')
	}
	return b.String()
}

// eventLine describes one event, e.g.
// "15:04:05 shard 3/16 ready → reconnecting (4000 unknown error)" or
// "15:04:06 shard 3/32 (joining) identifying → ready".
func (p logPane) eventLine(ev *manager.Event) string {
	var b strings.Builder
	b.WriteString(p.st.dim.Render(ev.At.In(p.loc).Format("15:04:05")))
	b.WriteByte(' ')
	switch ev.Type {
	case manager.EventState:
		b.WriteString("shard ")
		b.WriteString(ev.Key.String())
		b.WriteByte(' ')
		// In words: the table's +/- markers would read as part of the key.
		switch ev.Role {
		case manager.RoleJoining:
			b.WriteString(p.st.role(ev.Role).Render("(joining)"))
			b.WriteByte(' ')
		case manager.RoleRetiring:
			b.WriteString(p.st.role(ev.Role).Render("(retiring)"))
			b.WriteByte(' ')
		}
		b.WriteString(ev.From.String())
		b.WriteString(" → ")
		b.WriteString(p.st.state(ev.To).Render(ev.To.String()))
		if ev.CloseCode != 0 || ev.Reason != "" {
			b.WriteString(" (")
			// "ready → closed (4000, session kept resumable)", not
			// "(4000 closed: session kept resumable)": the arrow said closed.
			if rest, ok := strings.CutPrefix(ev.Reason, ev.To.String()+": "); ok && ev.CloseCode != 0 {
				b.WriteString(strconv.Itoa(ev.CloseCode))
				b.WriteString(", ")
				b.WriteString(sanitize(rest))
			} else {
				b.WriteString(closeText(ev.CloseCode, ev.Reason))
			}
			b.WriteByte(')')
		}
	case manager.EventSplitStarted, manager.EventSplitDone, manager.EventSplitAborted:
		b.WriteString("split of ")
		b.WriteString(ev.Key.String())
		b.WriteByte(' ')
		b.WriteString(strings.TrimPrefix(ev.Type.String(), "split-"))
	case manager.EventReshardStarted, manager.EventReshardDone, manager.EventReshardAborted:
		b.WriteString("re-shard to ")
		b.WriteString(strconv.Itoa(ev.Key.Count))
		b.WriteString(" shards ")
		b.WriteString(strings.TrimPrefix(ev.Type.String(), "reshard-"))
	default:
		b.WriteString(ev.Type.String())
		b.WriteByte(' ')
		b.WriteString(ev.Key.String())
	}
	if ev.Err != nil {
		b.WriteString(": ")
		// The line names the shard already; the detail of the selected
		// shard has the error whole.
		msg := strings.TrimPrefix(ev.Err.Error(), "gateway: shard "+strconv.Itoa(ev.Key.ID)+": ")
		b.WriteString(p.st.bad.Render(sanitize(msg)))
	}
	return b.String()
}
