package tui

import (
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/x/ansi"
)

// helpLines is the help at the bottom of the screen: one line, or every
// binding in columns when the full help is open.
func (m *Model) helpLines(width int) []string {
	if width <= 0 {
		return nil
	}
	if m.help.ShowAll {
		return m.fullHelp(width)
	}
	return []string{m.shortHelp(width)}
}

// shortHelp is the enabled bindings on one line. When they do not all fit,
// the shard and view keys are cut ("…"), never "? more • q quit": those
// say how to see the rest and how to leave. The bubble renders each item;
// the cutting is done here, as its own lets a line overflow once not even
// its "…" fits.
func (m *Model) shortHelp(width int) string {
	h := m.help
	h.Width = 0
	tail := h.ShortHelpView([]key.Binding{m.keys.Help, m.keys.Quit})
	sep := h.Styles.ShortSeparator.Inline(true).Render(h.ShortSeparator)
	sepW := ansi.StringWidth(sep)
	room := width
	if tail != "" {
		room -= ansi.StringWidth(tail) + sepW
	}
	var b strings.Builder
	used := 0
	for _, kb := range m.keys.shortHelpHead() {
		if !kb.Enabled() {
			continue
		}
		item := h.ShortHelpView([]key.Binding{kb})
		w := ansi.StringWidth(item)
		if used > 0 {
			w += sepW
		}
		if used+w > room {
			ell := h.Styles.Ellipsis.Inline(true).Render(" " + h.Ellipsis)
			if used > 0 && used+ansi.StringWidth(ell) <= room {
				b.WriteString(ell)
			}
			break
		}
		if used > 0 {
			b.WriteString(sep)
		}
		b.WriteString(item)
		used += w
	}
	switch {
	case b.Len() == 0:
		return fit(tail, width)
	case tail == "":
		return fit(b.String(), width)
	}
	return fit(b.String()+sep+tail, width)
}

// fullHelp lists every binding in columns, as the help bubble lays them
// out, but keeps the disabled ones, dimmed, with a last line saying which
// they are: the bubble would leave them out, and a user looking for a key
// would not learn that it exists.
func (m *Model) fullHelp(width int) []string {
	type column struct {
		keys, descs []string
		on          []bool
		keyW, descW int
	}
	var cols []column
	var off []string
	for _, group := range m.keys.FullHelp() {
		var c column
		for _, b := range group {
			hk, hd := b.Help().Key, b.Help().Desc
			if hk == "" {
				continue
			}
			c.keys, c.descs, c.on = append(c.keys, hk), append(c.descs, hd), append(c.on, b.Enabled())
			c.keyW, c.descW = max(c.keyW, ansi.StringWidth(hk)), max(c.descW, ansi.StringWidth(hd))
			if !b.Enabled() && !slices.Contains(off, hk) { // esc is two keys
				off = append(off, hk)
			}
		}
		if len(c.keys) > 0 {
			cols = append(cols, c)
		}
	}
	const gap = 4
	// Columns side by side while they fit; the next ones go below, so that
	// a narrow terminal still lists every key (the bubble drops them).
	var blocks [][]column
	used := 0
	for _, c := range cols {
		w := c.keyW + 1 + c.descW
		if n := len(blocks); n > 0 && used+gap+w <= width {
			blocks[n-1] = append(blocks[n-1], c)
			used += gap + w
			continue
		}
		blocks = append(blocks, []column{c})
		used = w
	}
	st := m.st
	var lines []string
	for _, blk := range blocks {
		rows := 0
		for _, c := range blk {
			rows = max(rows, len(c.keys))
		}
		n := len(blk)
		for r := 0; r < rows; r++ {
			var b strings.Builder
			for i, c := range blk {
				if i > 0 {
					writeSpaces(&b, gap)
				}
				if r >= len(c.keys) {
					if i < n-1 {
						writeSpaces(&b, c.keyW+1+c.descW)
					}
					continue
				}
				var kc, dc strings.Builder
				writeCell(&kc, c.keys[r], c.keyW, false)
				dc.WriteByte(' ')
				if i < n-1 {
					writeCell(&dc, c.descs[r], c.descW, false)
				} else {
					dc.WriteString(c.descs[r])
				}
				if c.on[r] {
					b.WriteString(st.helpKey.Render(kc.String()))
					b.WriteString(st.helpDesc.Render(dc.String()))
				} else {
					b.WriteString(st.helpOff.Render(kc.String() + dc.String()))
				}
			}
			lines = append(lines, fit(strings.TrimRight(b.String(), " "), width))
		}
	}
	if len(off) > 0 {
		var note string
		switch m.mode {
		case modeFilter:
			note = "dimmed: not while editing the filter (keys type into it)"
		case modeConfirm:
			note = "dimmed: not while a question waits for y or n"
		default:
			note = "dimmed: " + strings.Join(off, " ") + " (not now; press one to see why)"
		}
		lines = append(lines, st.dim.Render(fit(note, width)))
	}
	return lines
}
