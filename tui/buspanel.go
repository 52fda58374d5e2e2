package tui

import (
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/bus"
)

// busPanel renders the event bus: a title with its mode, URL and
// connection, a line of traffic (publish rate, in flight against the
// buffer, held shards, lost events), a line per consumer (its backlog and
// redeliveries) and a line of the stream (messages, size, sequences).
type busPanel struct {
	st    *styles
	stats *bus.Stats
	rate  float64 // events published per second
	now   time.Time
}

// staleStream is how old the stream's figures may be before the panel says
// when they were read (the bus reads them every 2 s while connected).
const staleStream = 10 * time.Second

// fullLines is the panel with every line: title, traffic, stream and a
// line per consumer (or one saying there is none).
func (p busPanel) fullLines() int { return 3 + max(1, len(p.stats.Consumers)) }

// minLines is the title and the traffic.
func (p busPanel) minLines() int { return 2 }

// Render draws the panel in exactly height lines: the title and the
// traffic first, then the consumers, then the stream; consumers beyond
// the room are summed up on a last line.
func (p busPanel) Render(width, height int) string {
	if height <= 0 {
		return ""
	}
	lines := make([]string, 0, height)
	lines = append(lines, p.title(width))
	if height > 1 {
		lines = append(lines, p.traffic(width))
	}
	room := height - len(lines)
	cs := p.stats.Consumers
	stream := room > max(1, len(cs)) // the consumers come first
	if stream {
		room--
	}
	switch {
	case room <= 0:
	case len(cs) == 0:
		lines = append(lines, p.st.dim.Render(fit("  no consumers yet", width)))
	case len(cs) <= room:
		for i := range cs {
			lines = append(lines, p.consumerLine(i, width))
		}
	default:
		for i := range room - 1 {
			lines = append(lines, p.consumerLine(i, width))
		}
		var backlog uint64
		redelivered := 0
		for _, c := range cs[room-1:] {
			backlog += c.Pending
			redelivered += c.Redelivered
		}
		more := "  +" + strconv.Itoa(len(cs)-room+1) + " more consumers, backlog " + string(appendCount(nil, int64(backlog))) +
			", redelivered " + strconv.Itoa(redelivered)
		lines = append(lines, p.st.dim.Render(fit(more, width)))
	}
	if stream {
		lines = append(lines, p.stream(width))
	}
	var b strings.Builder
	for i, l := range lines {
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

func (p busPanel) label(l, v string) string { return p.st.label.Render(l) + " " + v }

// title is "EVENT BUS  embedded  nats://…  connected".
func (p busPanel) title(width int) string {
	s := p.stats
	conn := p.st.good.Render("connected")
	if !s.Connected {
		conn = p.st.bad.Render("disconnected")
	}
	segs := []segment{{p.st.panelTitle.Render("EVENT BUS"), 0}, {sanitize(s.Mode), 1}, {conn, 0}}
	if s.URL != "" {
		segs = append(segs[:2], segment{sanitize(s.URL), 2}, segs[2])
	}
	return joinSegments(segs, width)
}

// traffic is "publish 812/s  in flight 12/4096  3.4 KB/64 MB  held 0  lost 0 …".
func (p busPanel) traffic(width int) string {
	s := p.stats
	var buf []byte
	buf = appendRate(buf, p.rate)
	rate := string(buf) + "/s"
	inflight := strconv.Itoa(s.InFlight) + "/" + strconv.Itoa(s.Buffer)
	if s.Buffer > 0 && s.InFlight*2 > s.Buffer {
		inflight = p.st.warn.Render(inflight)
	}
	bytes := string(appendBytes(nil, s.InFlightBytes)) + "/" + string(appendBytes(nil, s.BufferBytes))
	// Held shards and lost events matter most when there are any.
	held := strconv.Itoa(s.Held)
	heldDrop := 3
	if s.Held > 0 {
		held, heldDrop = p.st.warn.Render(held), 0
	}
	lost := strconv.FormatUint(s.Lost, 10)
	lostDrop := 3
	if s.Lost > 0 {
		lost, lostDrop = p.st.bad.Render(lost), 0
	}
	segs := []segment{
		{"  " + p.label("publish", rate), 0},
		{p.label("in flight", inflight), 0},
		{p.label("buffered", bytes), 2},
		{p.label("held", held), heldDrop},
		{p.label("lost", lost), lostDrop},
	}
	if s.Refused > 0 {
		segs = append(segs, segment{p.label("refused", p.st.warn.Render(strconv.FormatUint(s.Refused, 10))), 4})
	}
	if s.Failed > 0 {
		segs = append(segs, segment{p.label("failed", p.st.warn.Render(strconv.FormatUint(s.Failed, 10))), 4})
	}
	return joinSegments(segs, width)
}

// stream is "stream SHARDTOP 12345 msgs 4.5 MB  seq 1-12345  acked 12345  dup 0".
func (p busPanel) stream(width int) string {
	s := p.stats
	st := &s.Stream
	name := sanitize(st.Name)
	if name == "" {
		name = "?"
	}
	msgs := string(appendCount(nil, int64(st.Msgs))) + " msgs " + string(appendBytes(nil, int64(st.Bytes)))
	segs := []segment{{"  " + p.label("stream", name+" "+msgs), 0}}
	if st.LastSeq > 0 {
		segs = append(segs, segment{p.label("seq", strconv.FormatUint(st.FirstSeq, 10)+"-"+strconv.FormatUint(st.LastSeq, 10)), 3})
	}
	segs = append(segs, segment{p.label("acked", strconv.FormatUint(s.Acked, 10)), 2},
		segment{p.label("dup", strconv.FormatUint(s.Duplicates, 10)), 4})
	switch {
	case s.Updated.IsZero():
		segs = append(segs, segment{p.st.dim.Render("not read yet"), 1})
	case p.now.Sub(s.Updated) > staleStream:
		segs = append(segs, segment{p.st.warn.Render("read " + string(appendSpan(nil, p.now.Sub(s.Updated))) + " ago"), 1})
	}
	return joinSegments(segs, width)
}

// consumerLine is "  workers  backlog 12  ack pending 3  redelivered 0".
func (p busPanel) consumerLine(i, width int) string {
	cs := p.stats.Consumers
	nameW := 0
	for _, c := range cs {
		nameW = max(nameW, ansi.StringWidth(sanitize(c.Name)))
	}
	nameW = min(nameW, 24)
	c := &cs[i]
	var b strings.Builder
	b.WriteString("  ")
	writeCell(&b, sanitize(c.Name), nameW, false)
	backlog := string(appendCount(nil, int64(c.Pending)))
	redel := strconv.Itoa(c.Redelivered)
	if c.Redelivered > 0 {
		redel = p.st.warn.Render(redel)
	}
	segs := []segment{
		{b.String(), 0},
		{p.label("backlog", backlog), 0},
		{p.label("redelivered", redel), 0},
		{p.label("ack pending", strconv.Itoa(c.AckPending)), 1},
	}
	return joinSegments(segs, width)
}

// appendBytes formats a size: "512 B", "3.4 KB", "64 MB", "1.2 GB".
func appendBytes(dst []byte, n int64) []byte {
	const unit = 1024
	if n < unit {
		dst = strconv.AppendInt(dst, max(n, 0), 10)
		return append(dst, " B"...)
	}
	v := float64(n)
	suffix := " KB"
	for _, s := range []string{" KB", " MB", " GB", " TB"} {
		v /= unit
		suffix = s
		if v < unit {
			break
		}
	}
	if v < 10 {
		dst = strconv.AppendFloat(dst, v, 'f', 1, 64)
	} else {
		dst = strconv.AppendFloat(dst, v, 'f', 0, 64)
	}
	return append(dst, suffix...)
}
