package tui

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
)

// sanitize makes text from the network safe to print: escape sequences
// (they could drive the terminal) are removed whole, so no "[31m" debris is
// left to read; other control characters become spaces, invalid UTF-8 and
// other unprintable runes become '?'.
func sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	if strings.IndexByte(s, 0x1b) >= 0 {
		s = ansi.Strip(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteByte('?')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			b.WriteByte(' ')
		case !unicode.IsPrint(r) && r != ' ':
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// fit truncates s (which may hold styling) to width cells, ending with "…"
// when cut.
func fit(s string, width int) string {
	if width <= 0 {
		return ""
	}
	if len(s) <= width { // byte length bounds the cell width
		return s
	}
	return ansi.Truncate(s, width, "…")
}

// cutAtWord shortens plain text s to width cells at a word boundary when
// one is not too far back, ending with "…": "4000 closed: session…"
// rather than "4000 closed: session ke…".
func cutAtWord(s string, width int) string {
	if ansi.StringWidth(s) <= width || width < 2 {
		return s
	}
	t := ansi.Truncate(s, width-1, "")
	if i := strings.LastIndexByte(t, ' '); i >= width/2 {
		t = strings.TrimRight(t[:i], " :,;")
	}
	return t + "…"
}

// writeCell writes s padded (or cut) to exactly w cells; s is plain text.
func writeCell(b *strings.Builder, s string, w int, right bool) {
	sw := len(s)
	if !isASCII(s) {
		sw = ansi.StringWidth(s)
	}
	if sw > w {
		s = ansi.Truncate(s, w, "…")
		sw = ansi.StringWidth(s)
	}
	pad := w - sw
	if right {
		writeSpaces(b, pad)
		b.WriteString(s)
		return
	}
	b.WriteString(s)
	writeSpaces(b, pad)
}

const spaces = "                                                                                "

func writeSpaces(b *strings.Builder, n int) {
	for n > 0 {
		k := min(n, len(spaces))
		b.WriteString(spaces[:k])
		n -= k
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendLatency formats a round trip: "42ms", "1.25s", "-" when unknown.
func appendLatency(dst []byte, d time.Duration) []byte {
	switch {
	case d <= 0:
		return append(dst, '-')
	case d < 10*time.Millisecond:
		dst = strconv.AppendFloat(dst, float64(d)/float64(time.Millisecond), 'f', 1, 64)
		return append(dst, "ms"...)
	case d < time.Second:
		dst = strconv.AppendInt(dst, int64(d/time.Millisecond), 10)
		return append(dst, "ms"...)
	default:
		dst = strconv.AppendFloat(dst, d.Seconds(), 'f', 2, 64)
		return append(dst, 's')
	}
}

// appendSpan formats a long duration compactly: "45s", "12m03s", "3h07m", "2d04h".
func appendSpan(dst []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	two := func(dst []byte, v int64) []byte {
		if v < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, v, 10)
	}
	switch {
	case s < 60:
		dst = strconv.AppendInt(dst, s, 10)
		return append(dst, 's')
	case s < 3600:
		dst = strconv.AppendInt(dst, s/60, 10)
		dst = append(dst, 'm')
		dst = two(dst, s%60)
		return append(dst, 's')
	case s < 86400:
		dst = strconv.AppendInt(dst, s/3600, 10)
		dst = append(dst, 'h')
		dst = two(dst, s%3600/60)
		return append(dst, 'm')
	default:
		dst = strconv.AppendInt(dst, s/86400, 10)
		dst = append(dst, 'd')
		dst = two(dst, s%86400/3600)
		return append(dst, 'h')
	}
}

// appendCountdown formats the time left until t: "now", "850ms", "4.2s", "3m05s".
func appendCountdown(dst []byte, left time.Duration) []byte {
	switch {
	case left <= 0:
		return append(dst, "now"...)
	case left < time.Second:
		dst = strconv.AppendInt(dst, int64(left/time.Millisecond), 10)
		return append(dst, "ms"...)
	case left < time.Minute:
		dst = strconv.AppendFloat(dst, left.Seconds(), 'f', 1, 64)
		return append(dst, 's')
	default:
		return appendSpan(dst, left)
	}
}

// appendRetry formats the wait before a reconnect's next dial, short
// enough for the STATE cell: "3.2s" under 10 s, then whole seconds up to
// the default 2 min backoff ("120s"), "now" once due. It rounds up, so it
// never says 0 while the shard still waits.
func appendRetry(dst []byte, left time.Duration) []byte {
	if left <= 0 {
		return append(dst, "now"...)
	}
	if tenths := (left + 100*time.Millisecond - 1) / (100 * time.Millisecond); tenths < 100 {
		dst = strconv.AppendInt(dst, int64(tenths/10), 10)
		dst = append(dst, '.')
		dst = strconv.AppendInt(dst, int64(tenths%10), 10)
		return append(dst, 's')
	}
	if secs := (left + time.Second - 1) / time.Second; secs <= 120 {
		dst = strconv.AppendInt(dst, int64(secs), 10)
		return append(dst, 's')
	}
	return appendSpan(dst, left)
}

// appendRate formats events per second: "0", "3.5", "812", "12.4k".
func appendRate(dst []byte, r float64) []byte {
	switch {
	case r <= 0:
		return append(dst, '0')
	case r < 100:
		return strconv.AppendFloat(dst, r, 'f', 1, 64)
	case r < 10000:
		return strconv.AppendFloat(dst, r, 'f', 0, 64)
	case r < 10e6:
		dst = strconv.AppendFloat(dst, r/1000, 'f', 1, 64)
		return append(dst, 'k')
	default:
		dst = strconv.AppendFloat(dst, r/1e6, 'f', 1, 64)
		return append(dst, 'M')
	}
}

// appendCount formats a counter that may outgrow its column: up to 9 digits
// as is, then "1.23G".
func appendCount(dst []byte, v int64) []byte {
	if v < 1e9 {
		return strconv.AppendInt(dst, v, 10)
	}
	dst = strconv.AppendFloat(dst, float64(v)/1e9, 'f', 2, 64)
	return append(dst, 'G')
}
