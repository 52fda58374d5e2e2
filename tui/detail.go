package tui

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// The detail of the selected shard aims at detailLinesGoal lines, dropping
// bookkeeping to get there; a long close reason and error still show
// whole, wrapping up to maxDetailLines (the layout may give fewer in a
// short terminal).
const (
	detailLinesGoal = 3
	maxDetailLines  = 6
	// The detail view (enter) gives the same pane more room and more.
	fullDetailLinesGoal = 6
	maxFullDetailLines  = 8
)

// detailPane describes the selected shard below the table: what the table
// has no room for (session, sequence, bucket, queue place, reconnect
// countdown), and its last close and last error in full, where the table
// and the log cut them.
type detailPane struct {
	st   *styles
	info *manager.ShardInfo
	now  time.Time
	loc  *time.Location
	// full is the pane of the detail view: the whole session ID, the
	// resume URL and the shard's counters, on more lines.
	full bool
}

// goals are the lines the pane aims at and the most it takes.
func (d detailPane) goals() (goal, most int) {
	if d.full {
		return fullDetailLinesGoal, maxFullDetailLines
	}
	return detailLinesGoal, maxDetailLines
}

// detailSeg is one item of the detail: a dim label and a value.
type detailSeg struct {
	label, value string
	style        *lipgloss.Style // of the value; nil: plain
	// drop ranks what goes first (highest first; 0: never) when the
	// detail needs more than maxDetailLines: bookkeeping before errors.
	drop int
	// flow lets a long value (a close reason, an error) start on the
	// current line and wrap over the full width, as a paragraph does.
	flow bool
}

func (d detailPane) segments() []detailSeg {
	info, st := d.info, d.st
	var segs []detailSeg
	var span []byte
	head := info.Key.String()
	if info.Role != manager.RoleActive {
		head += " (" + info.Role.String() + ")"
	}
	state := info.State.String()
	bucketSaid := false
	switch info.State {
	case gateway.StateReady:
		state += " for " + string(appendSpan(span, d.now.Sub(info.Since)))
	case gateway.StateReconnecting:
		if !info.RetryAt.IsZero() {
			if left := info.RetryAt.Sub(d.now); left > 0 {
				state += ", next dial in " + string(appendRetry(span, left))
			} else {
				state += ", dialing now"
			}
		}
		if info.ReconnectAttempts > 0 {
			state += " (attempt " + strconv.Itoa(info.ReconnectAttempts) + ")"
		}
	case gateway.StateQueued:
		if info.QueuePos >= 0 {
			state += ", place " + strconv.Itoa(info.QueuePos+1) + " in bucket " + strconv.Itoa(info.Bucket)
			bucketSaid = true
		}
	case gateway.StateClosed:
		if info.Resumable {
			state += ", session saved (r resumes it)"
		} else {
			state += ", no saved session (o identifies)"
		}
	case gateway.StateFailed:
		state += " (o reopens it once the cause is fixed)"
	default:
		state += " for " + string(appendSpan(span, d.now.Sub(info.Since)))
	}
	segs = append(segs, detailSeg{value: head + " " + state, style: &st.detailKey})
	if info.Node != "" {
		segs = append(segs, detailSeg{label: "node", value: sanitize(info.Node)})
	}
	if !bucketSaid {
		segs = append(segs, detailSeg{label: "bucket", value: strconv.Itoa(info.Bucket), drop: 1})
	}
	switch {
	case info.SessionID != "" && d.full: // what the view is for: never dropped
		segs = append(segs, detailSeg{label: "session", value: sanitize(info.SessionID)},
			detailSeg{label: "seq", value: strconv.FormatInt(info.Sequence, 10), drop: 3})
		if info.ResumeURL != "" {
			segs = append(segs, detailSeg{label: "resume", value: sanitize(info.ResumeURL)})
		}
	case info.SessionID != "":
		segs = append(segs, detailSeg{label: "session", value: shortSession(info.SessionID), drop: 2},
			detailSeg{label: "seq", value: strconv.FormatInt(info.Sequence, 10), drop: 3})
	case info.Node != "" && info.Sequence > 0:
		// A shard of another node: its session ID stays on that node (the
		// cluster does not publish it), but it has one.
		segs = append(segs, detailSeg{label: "seq", value: strconv.FormatInt(info.Sequence, 10), drop: 3})
	default:
		segs = append(segs, detailSeg{value: "no session", drop: 2})
	}
	if d.full {
		lat := string(appendLatency(nil, info.Latency)) + " last, " + string(appendLatency(nil, info.SmoothedLatency)) + " avg"
		segs = append(segs,
			detailSeg{label: "guilds", value: strconv.Itoa(info.Guilds), drop: 5},
			detailSeg{label: "events", value: string(appendCount(nil, int64(info.Events))), drop: 5},
			detailSeg{label: "latency", value: lat, drop: 5},
			detailSeg{label: "identifies", value: strconv.FormatUint(info.Identifies, 10), drop: 6},
			detailSeg{label: "resumes", value: strconv.FormatUint(info.Resumes, 10), drop: 6},
			detailSeg{label: "up", value: string(appendSpan(nil, info.Uptime)), drop: 6})
	}
	if info.Reconnects > 0 {
		segs = append(segs, detailSeg{label: "reconnects", value: strconv.FormatUint(info.Reconnects, 10), drop: 4})
	}
	if info.SequenceGaps > 0 {
		segs = append(segs, detailSeg{label: "sequence gaps", value: strconv.FormatUint(info.SequenceGaps, 10), style: &st.warn, drop: 4})
	}
	if info.LastCloseCode != 0 || info.LastCloseReason != "" {
		v := closeText(info.LastCloseCode, info.LastCloseReason)
		if !info.LastCloseAt.IsZero() {
			v += " at " + info.LastCloseAt.In(d.loc).Format("15:04:05")
		}
		segs = append(segs, detailSeg{label: "last close", value: v, flow: true})
	}
	if info.LastError != "" {
		segs = append(segs, detailSeg{label: "last error", value: info.LastErrorAt.In(d.loc).Format("15:04:05") + " " + sanitize(info.LastError), style: &st.bad, flow: true})
	}
	return segs
}

// Lines lays the detail out in lines of width: at most detailLinesGoal
// while bookkeeping (bucket, session, counters) can be dropped to get
// there, never cutting the close reason or the error before
// maxDetailLines.
func (d detailPane) Lines(width int) []string {
	if d.info == nil || width <= 0 {
		return nil
	}
	segs := d.segments()
	goal, most := d.goals()
	for {
		lines := d.layout(segs, width)
		if len(lines) <= goal {
			return lines
		}
		worst := -1
		for i, sg := range segs {
			if sg.drop > 0 && (worst < 0 || sg.drop >= segs[worst].drop) {
				worst = i
			}
		}
		if worst < 0 {
			if len(lines) > most {
				last := strings.Join(lines[most-1:], " ")
				lines = append(lines[:most-1], fit(last, width))
			}
			return lines
		}
		segs = slices.Delete(segs, worst, worst+1)
	}
}

const (
	detailGap = 2
	// minFlowRoom is the least room left on a line for a flowing value
	// to start there rather than on the next line.
	minFlowRoom = 16
	nbsp        = "\u00a0" // keeps "last error 15:04:05" whole when wrapping
)

// layout puts the segments greedily on lines of width: an item that does
// not fit the rest of a line starts the next one; a flowing one wraps.
func (d detailPane) layout(segs []detailSeg, width int) []string {
	var lines []string
	var cur strings.Builder
	curW := 0
	flush := func() {
		if curW > 0 {
			lines = append(lines, cur.String())
		}
		cur.Reset()
		curW = 0
	}
	render := func(label, value string, style *lipgloss.Style) string {
		var b strings.Builder
		if label != "" {
			b.WriteString(d.st.label.Render(label))
			if value == "" {
				return b.String()
			}
			b.WriteByte(' ')
		}
		if style != nil {
			b.WriteString(style.Render(value))
		} else {
			b.WriteString(value)
		}
		return b.String()
	}
	for _, sg := range segs {
		plain := sg.value
		if sg.label != "" {
			plain = sg.label + " " + sg.value
		}
		w := ansi.StringWidth(plain)
		room := width - curW
		if curW > 0 {
			room -= detailGap
		}
		if w <= room {
			if curW > 0 {
				writeSpaces(&cur, detailGap)
				curW += detailGap
			}
			cur.WriteString(render(sg.label, sg.value, sg.style))
			curW += w
			continue
		}
		if !sg.flow {
			flush()
			cur.WriteString(fit(render(sg.label, sg.value, sg.style), width))
			curW = min(w, width)
			continue
		}
		if curW > 0 && room < minFlowRoom {
			flush()
		}
		// Wrap the value as if it started where the line is now: a
		// placeholder stands for what the line already holds.
		lead := 0
		if curW > 0 {
			lead = curW + detailGap
		}
		label := strings.ReplaceAll(sg.label, " ", nbsp)
		text := label + nbsp + sg.value
		if i := strings.IndexByte(sg.value, ' '); i > 0 && sg.label != "" { // the time stays with its label
			text = label + nbsp + sg.value[:i] + nbsp + sg.value[i+1:]
		}
		placeholder := ""
		if lead > 0 {
			placeholder = strings.Repeat("x", lead-1) + " "
		}
		wrapped := strings.Split(ansi.Wrap(placeholder+text, width, ""), "\n")
		for k, l := range wrapped {
			l = strings.ReplaceAll(l, nbsp, " ")
			if k == 0 {
				l = strings.TrimLeft(strings.TrimPrefix(l, strings.TrimSuffix(placeholder, " ")), " ")
			}
			piece := l
			if k == 0 && strings.HasPrefix(l, sg.label+" ") {
				piece = render(sg.label, strings.TrimPrefix(l, sg.label+" "), sg.style)
			} else if sg.style != nil {
				piece = sg.style.Render(l)
			}
			if k > 0 {
				flush()
			} else if curW > 0 && l != "" {
				writeSpaces(&cur, detailGap)
				curW += detailGap
			}
			cur.WriteString(piece)
			curW += ansi.StringWidth(l)
			if k == 0 && l == "" && curW > 0 {
				flush()
			}
		}
	}
	flush()
	for i := range lines {
		lines[i] = fit(lines[i], width)
	}
	return lines
}
