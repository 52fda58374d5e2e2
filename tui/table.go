package tui

import (
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// colID names a shard table column.
type colID uint8

const (
	colShard colID = iota
	colState
	colNode // in a cluster only: the node running the shard
	colLatency
	colGuilds
	colEvents
	colSeq
	colSession
	colBucket
	colQueue
	colUptime
	colClose
	numCols
)

type colDef struct {
	title string
	width int // content width; colShard's is the widest key
	right bool
}

var colDefs = [numCols]colDef{
	colShard:   {"SHARD", 6, false},
	colState:   {"STATE", stateColWidth, false},
	colNode:    {"NODE", 4, false},
	colLatency: {"LATENCY", 7, true},
	colGuilds:  {"GUILDS", 6, true},
	colEvents:  {"EV/S", 6, true},
	colSeq:     {"SEQ", 9, true},
	colSession: {"SESSION", 8, false},
	colBucket:  {"BUCKET", 6, true},
	colQueue:   {"QUEUE", 5, true},
	colUptime:  {"UPTIME", 6, true},
	colClose:   {"LAST CLOSE", closeMinWidth, false},
}

// dropOrder is the order columns go when the terminal is too narrow;
// SHARD and STATE always stay, and so does the sort column. What goes first
// is in the selected shard's detail line (session, sequence, bucket, queue
// place, node); LAST CLOSE goes last, since it says what went wrong.
var dropOrder = [...]colID{colSession, colSeq, colBucket, colQueue, colGuilds, colUptime, colEvents, colNode, colLatency, colClose}

const (
	rowPrefix = 2 // cursor and role marker
	// stateColWidth holds "reconnecting 3.2s" (a reconnect's countdown).
	stateColWidth = len("reconnecting 119s")
	// closeMinWidth holds the usual closes whole ("4011 sharding required");
	// LAST CLOSE grows into spare width up to closeMaxWidth, and the
	// detail line shows it whole.
	closeMinWidth = 22
	closeMaxWidth = 48
	// maxNodeWidth bounds the NODE column; a longer name is cut there
	// (the detail line shows it whole).
	maxNodeWidth = 16
)

type colSpec struct {
	id    colID
	width int
}

// tableColumns picks the columns that fit width, in display order, keeping
// the column of sort. nodeW is the widest node name, 0 for a manager on its
// own: it has no NODE column.
func tableColumns(width, shardW, nodeW int, sort colID) ([numCols]colSpec, int) {
	var widths [numCols]int
	for i := range colDefs {
		widths[i] = colDefs[i].width
	}
	widths[colShard] = max(widths[colShard], shardW)
	widths[colNode] = max(widths[colNode], min(nodeW, maxNodeWidth))
	widths[sort] = max(widths[sort], len(colDefs[sort].title)+1) // and its ▲
	var dropped [numCols]bool
	dropped[colNode] = nodeW == 0
	total := func() int {
		t, n := rowPrefix, 0
		for i, w := range widths {
			if !dropped[i] {
				t += w
				n++
			}
		}
		return t + n - 1
	}
	for _, id := range dropOrder {
		if total() <= width {
			break
		}
		if id != sort {
			dropped[id] = true
		}
	}
	if !dropped[colClose] {
		widths[colClose] = min(closeMaxWidth, widths[colClose]+max(0, width-total()))
	}
	var cols [numCols]colSpec
	n := 0
	for i := range widths {
		if !dropped[i] {
			cols[n] = colSpec{colID(i), widths[i]}
			n++
		}
	}
	return cols, n
}

// shardTable renders the visible window of the (filtered, sorted) shards.
type shardTable struct {
	st      *styles
	shards  []manager.ShardInfo
	rows    []int32 // indices into shards, in display order
	offset  int     // first visible row
	cursor  int     // selected row, -1 if none
	sortCol sortColumn
	desc    bool
	shardW  int
	nodeW   int       // widest node name; 0: no NODE column
	empty   string    // shown when rows is empty
	now     time.Time // for UPTIME
}

// Render draws the header line and up to height-1 rows, exactly height lines.
func (t shardTable) Render(width, height int) string {
	if height <= 0 {
		return ""
	}
	cols, n := tableColumns(width, t.shardW, t.nodeW, t.sortCol.col())
	var b strings.Builder
	b.Grow((width + 32) * height)

	var hdr strings.Builder
	hdr.Grow(width)
	writeSpaces(&hdr, rowPrefix)
	for i := 0; i < n; i++ {
		if i > 0 {
			hdr.WriteByte(' ')
		}
		c := cols[i]
		title := colDefs[c.id].title
		if c.id == t.sortCol.col() {
			if t.desc {
				title += "▼"
			} else {
				title += "▲"
			}
		}
		writeCell(&hdr, title, c.width, colDefs[c.id].right)
	}
	b.WriteString(t.st.tableHeader.Render(fit(hdr.String(), width)))

	var scratch [64]byte
	var row strings.Builder
	row.Grow(width + 16)
	for line := 1; line < height; line++ {
		b.WriteByte('\n')
		r := t.offset + line - 1
		if r >= len(t.rows) {
			if len(t.rows) == 0 && line == 1 {
				b.WriteString(t.st.dim.Render(fit("  "+t.empty, width)))
			}
			continue
		}
		info := &t.shards[t.rows[r]]
		selected := r == t.cursor
		row.Reset()
		if selected {
			row.WriteByte('>')
		} else {
			row.WriteByte(' ')
		}
		marker := " "
		switch info.Role {
		case manager.RoleJoining:
			marker = "+"
		case manager.RoleRetiring:
			marker = "-"
		}
		if selected || info.Role == manager.RoleActive {
			row.WriteString(marker)
		} else {
			row.WriteString(t.st.role(info.Role).Render(marker))
		}
		for i := 0; i < n; i++ {
			if i > 0 {
				row.WriteByte(' ')
			}
			c := cols[i]
			right := colDefs[c.id].right
			buf := scratch[:0]
			switch c.id {
			case colShard:
				buf = strconv.AppendInt(buf, int64(info.Key.ID), 10)
				buf = append(buf, '/')
				buf = strconv.AppendInt(buf, int64(info.Key.Count), 10)
			case colState:
				cell := info.State.String()
				if info.State == gateway.StateReconnecting && !info.RetryAt.IsZero() {
					cell += " " + string(appendRetry(buf, info.RetryAt.Sub(t.now)))
				}
				switch {
				case selected:
					writeCell(&row, cell, c.width, false)
				case len(cell) > len(info.State.String()):
					var sc strings.Builder
					writeCell(&sc, cell, c.width, false)
					row.WriteString(t.st.state(info.State).Render(sc.String()))
				default:
					row.WriteString(t.st.stateCell(info.State, c.width))
				}
				continue
			case colNode:
				node := "-"
				if info.Node != "" {
					node = sanitize(info.Node)
				}
				writeCell(&row, node, c.width, false)
				continue
			case colLatency:
				buf = appendLatency(buf, shownLatency(info))
			case colGuilds:
				buf = strconv.AppendInt(buf, int64(info.Guilds), 10)
			case colEvents:
				if connected(info.State) {
					buf = appendRate(buf, info.EventsPerSec)
				} else {
					buf = append(buf, '-')
				}
			case colSeq:
				buf = appendCount(buf, info.Sequence)
			case colSession:
				writeCell(&row, shortSession(info.SessionID), c.width, false)
				continue
			case colBucket:
				buf = strconv.AppendInt(buf, int64(info.Bucket), 10)
			case colQueue:
				if info.QueuePos < 0 {
					buf = append(buf, '-')
				} else {
					buf = strconv.AppendInt(buf, int64(info.QueuePos)+1, 10)
				}
			case colUptime:
				if info.State == gateway.StateReady {
					buf = appendSpan(buf, t.now.Sub(info.Since))
				} else {
					buf = append(buf, '-')
				}
			case colClose:
				writeCell(&row, cutAtWord(closeText(info.LastCloseCode, info.LastCloseReason), c.width), c.width, false)
				continue
			}
			writeCell(&row, string(buf), c.width, right)
		}
		line := fit(row.String(), width)
		if selected {
			var sel strings.Builder
			sel.Grow(width)
			sel.WriteString(line)
			writeSpaces(&sel, width-rowWidth(line))
			line = t.st.selected.Render(sel.String())
		}
		b.WriteString(line)
	}
	return b.String()
}

// connected reports whether a shard in state s has a gateway connection
// past Hello: only then are its latency and event rate current. A closed,
// failed, queued or reconnecting shard keeps the figures of its last
// connection in the snapshot; the table shows "-" instead.
func connected(s gateway.State) bool {
	return s == gateway.StateIdentifying || s == gateway.StateResuming || s == gateway.StateReady
}

// shownLatency is the LATENCY cell's round trip, 0 ("-") when unknown or
// stale.
func shownLatency(info *manager.ShardInfo) time.Duration {
	if !connected(info.State) {
		return 0
	}
	if info.SmoothedLatency > 0 {
		return info.SmoothedLatency
	}
	return info.Latency
}

// rowWidth is the width of a row built from plain ASCII cells and
// sanitized text.
func rowWidth(s string) int {
	if isASCII(s) {
		return len(s)
	}
	return ansi.StringWidth(s)
}

// shortSession is the first 8 characters of a session ID, printable only.
func shortSession(id string) string {
	if id == "" {
		return "-"
	}
	if len(id) > 8 {
		id = id[:8]
	}
	return sanitize(id)
}

// closeText describes a close: "4000 unknown error", "-" when none.
func closeText(code int, reason string) string {
	if code == 0 && reason == "" {
		return "-"
	}
	if reason == "" {
		return strconv.Itoa(code)
	}
	if code == 0 {
		return sanitize(reason)
	}
	c := strconv.Itoa(code)
	// The gateway's reasons often name the code already ("close 4000 unknown
	// error: resuming"): say it once.
	reason = strings.TrimPrefix(reason, "close "+c+" ")
	return c + " " + sanitize(reason)
}
