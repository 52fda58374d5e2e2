package tui

import (
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/manager"
)

// nodesPanel renders the processes of a clustered bot: a title with how
// many there are (and how many are gone), then a line per node: its name,
// the shards it runs and how many are Ready, the leases it holds, when it
// was last heard from, and marks for this process, a watch-only node and
// a gone one. Gone nodes come first when not every node fits.
type nodesPanel struct {
	st    *styles
	nodes []manager.NodeInfo
	now   time.Time
}

// fullLines is the title and a line per node.
func (p nodesPanel) fullLines() int { return 1 + max(1, len(p.nodes)) }

// minLines is the title and one line (a node, or what the rest hold).
func (p nodesPanel) minLines() int { return 2 }

// gone counts the nodes not heard from for longer than their lease.
func (p nodesPanel) gone() int {
	n := 0
	for i := range p.nodes {
		if p.nodes[i].Gone {
			n++
		}
	}
	return n
}

// Render draws the panel in exactly height lines.
func (p nodesPanel) Render(width, height int) string {
	if height <= 0 {
		return ""
	}
	lines := make([]string, 0, height)
	lines = append(lines, p.title(width))
	room := height - 1
	nameW := len("NODE")
	for i := range p.nodes {
		nameW = max(nameW, ansi.StringWidth(sanitize(p.nodes[i].Name)))
	}
	nameW = min(nameW, maxNodeWidth)
	switch {
	case room <= 0:
	case len(p.nodes) == 0:
		lines = append(lines, p.st.dim.Render(fit("  no nodes heard from yet", width)))
	case len(p.nodes) <= room:
		for i := range p.nodes {
			lines = append(lines, p.nodeLine(&p.nodes[i], nameW, width))
		}
	default:
		lines = append(lines, p.compact(width, room)...)
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

// order is the nodes' indices, gone ones first (they need a look), then
// this process's, then the rest in name order.
func (p nodesPanel) order() []int {
	order := make([]int, 0, len(p.nodes))
	for pass := 0; pass < 3; pass++ {
		for i := range p.nodes {
			n := &p.nodes[i]
			if (pass == 0 && n.Gone) || (pass == 1 && !n.Gone && n.Self) || (pass == 2 && !n.Gone && !n.Self) {
				order = append(order, i)
			}
		}
	}
	return order
}

// compact puts the nodes as short cells ("» n1 3/6", "n3 gone") on room
// lines, ending with "+N more" when they do not all fit.
func (p nodesPanel) compact(width, room int) []string {
	order := p.order()
	cells := make([]string, len(order))
	plain := make([]int, len(order))
	for k, i := range order {
		n := &p.nodes[i]
		var c strings.Builder
		if n.Self {
			c.WriteString("» ")
		}
		c.WriteString(sanitize(n.Name))
		c.WriteByte(' ')
		switch {
		case n.Gone:
			c.WriteString(p.st.bad.Render("gone"))
		case n.WatchOnly:
			c.WriteString(p.st.dim.Render("watching"))
		default:
			c.WriteString(strconv.Itoa(n.Ready) + "/" + strconv.Itoa(n.Shards))
		}
		cells[k] = c.String()
		plain[k] = ansi.StringWidth(cells[k])
	}
	var lines []string
	k := 0
	for len(lines) < room && k < len(cells) {
		var l strings.Builder
		l.WriteString("  ")
		w := 2
		for ; k < len(cells); k++ {
			need := plain[k]
			if w > 2 {
				need += 2
			}
			// The last line keeps room for what is left out.
			last := len(lines) == room-1
			tail := 0
			if last && k < len(cells)-1 {
				tail = len("  +99 more")
			}
			if w+need+tail > width && w > 2 {
				break
			}
			if w > 2 {
				l.WriteString("  ")
			}
			l.WriteString(cells[k])
			w += need
		}
		if len(lines) == room-1 && k < len(cells) {
			l.WriteString(p.st.dim.Render("  +" + strconv.Itoa(len(cells)-k) + " more"))
		}
		lines = append(lines, fit(l.String(), width))
	}
	return lines
}

// title is "NODES  3 nodes, 1 gone".
func (p nodesPanel) title(width int) string {
	count := strconv.Itoa(len(p.nodes)) + " nodes"
	if len(p.nodes) == 1 {
		count = "1 node"
	}
	segs := []segment{
		{p.st.panelTitle.Render("NODES"), 0},
		{p.st.dim.Render(count), 0},
	}
	if g := p.gone(); g > 0 {
		segs = append(segs, segment{p.st.bad.Render(strconv.Itoa(g) + " gone"), 0})
	}
	return joinSegments(segs, width)
}

// nodeLine is one node: "  n2    shards 4  ready 3/4  leases 4  seen 2s ago  this node".
func (p nodesPanel) nodeLine(n *manager.NodeInfo, nameW, width int) string {
	var b strings.Builder
	marker := "  "
	if n.Self {
		marker = "» "
	}
	b.WriteString(marker)
	writeCell(&b, sanitize(n.Name), nameW, false)
	l := func(k, v string) string { return p.st.label.Render(k) + " " + v }
	segs := []segment{{b.String(), 0}}
	if n.WatchOnly {
		segs = append(segs, segment{p.st.dim.Render("watching, runs no shards"), 0})
	} else {
		ready := strconv.Itoa(n.Ready) + "/" + strconv.Itoa(n.Shards)
		switch {
		case n.Gone:
		case n.Shards > 0 && n.Ready == n.Shards:
			ready = p.st.good.Render(ready)
		case n.Shards > 0:
			ready = p.st.warn.Render(ready)
		}
		var cnt strings.Builder
		writeCell(&cnt, strconv.Itoa(n.Leases), 3, true)
		segs = append(segs, segment{l("ready", ready), 0}, segment{l("leases", cnt.String()), 2})
	}
	seen := "never"
	if !n.LastSeen.IsZero() {
		seen = string(appendSpan(nil, max(0, p.now.Sub(n.LastSeen)))) + " ago"
	}
	if n.Self {
		segs = append(segs, segment{p.st.dim.Render("this node"), 1})
	} else {
		segs = append(segs, segment{l("seen", seen), 1})
	}
	if n.Gone {
		segs = append(segs, segment{p.st.bad.Render("gone"), 0})
	}
	return joinSegments(segs, width)
}
