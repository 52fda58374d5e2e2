package gateway

import (
	"bytes"
	"strconv"
)

// envelope is what scanEnvelope finds in one gateway payload. Slices point
// into the scanned buffer.
type envelope struct {
	op     int
	hasOp  bool
	seq    int64
	hasSeq bool   // s was a number (not null / missing)
	t      []byte // event name without quotes; nil when null or missing
	d      []byte // raw JSON value of d; nil when missing
}

// scanEnvelope finds op, s, t and d in a payload {"op":..,"d":..,"s":..,"t":..}
// in any key order, without decoding d. It checks the structure it walks
// (strings closed, brackets balanced, literals spelled) but does not fully
// validate d: the handler gets d's raw bytes.
func scanEnvelope(b []byte, e *envelope) error {
	*e = envelope{}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return scanErr("envelope", i, "payload is not a JSON object")
	}
	i++
	for first := true; ; first = false {
		i = skipWS(b, i)
		if i >= len(b) {
			return scanErr("envelope", i, "unterminated object")
		}
		if b[i] == '}' {
			if !first {
				return scanErr("envelope", i, "trailing comma")
			}
			i++
			break
		}
		if b[i] != '"' {
			return scanErr("envelope", i, "expected a key")
		}
		kEnd, err := skipString(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : kEnd-1]
		i = skipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return scanErr("envelope", i, "expected ':'")
		}
		i = skipWS(b, i+1)
		vEnd, err := skipValue(b, i)
		if err != nil {
			return err
		}
		val := b[i:vEnd]
		if len(key) == 1 || len(key) == 2 {
			switch string(key) {
			case "op":
				v, ok := parseInt(val)
				if !ok {
					return scanErr("envelope", i, "op is not an integer")
				}
				e.op, e.hasOp = int(v), true
			case "s":
				if val[0] != 'n' {
					v, ok := parseInt(val)
					if !ok {
						return scanErr("envelope", i, "s is not an integer")
					}
					e.seq, e.hasSeq = v, true
				}
			case "t":
				if val[0] == '"' {
					e.t = val[1 : len(val)-1]
				} else if val[0] != 'n' {
					return scanErr("envelope", i, "t is not a string")
				}
			case "d":
				e.d = val
			}
		}
		i = skipWS(b, vEnd)
		if i >= len(b) {
			return scanErr("envelope", i, "unterminated object")
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] == '}' {
			i++
			break
		}
		return scanErr("envelope", i, "expected ',' or '}'")
	}
	if i = skipWS(b, i); i != len(b) {
		return scanErr("envelope", i, "data after the object")
	}
	if !e.hasOp {
		return scanErr("envelope", -1, "no op")
	}
	return nil
}

func scanErr(stage string, off int, reason string) error {
	return &DecodeError{Stage: stage, Offset: off, Reason: reason}
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return i, scanErr("json", i, "expected a value")
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		return skipNested(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(b) {
			c := b[j]
			if (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
				j++
				continue
			}
			break
		}
		if b[j-1] == '-' {
			return j, scanErr("json", i, "bad number")
		}
		return j, nil
	}
	return i, scanErr("json", i, "unexpected character")
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, scanErr("json", i, "bad literal")
	}
	return i + len(lit), nil
}

// skipString returns the index just past the string whose opening quote is b[i].
func skipString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b), scanErr("json", i, "unterminated string")
		}
		j += k
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		j++
		if n%2 == 0 {
			return j, nil
		}
	}
}

// maxDepth bounds nesting so a hostile frame cannot make the bracket stack grow without end.
const maxDepth = 512

// skipNested returns the index just past the object or array starting at
// b[i], checking that strings close and brackets pair up.
func skipNested(b []byte, i int) (int, error) {
	var stack [maxDepth / 8]byte // one bit per level: 1 = object
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			end, err := skipString(b, j)
			if err != nil {
				return end, err
			}
			j = end - 1
		case '{', '[':
			if depth >= maxDepth {
				return j, scanErr("json", j, "nesting too deep")
			}
			if b[j] == '{' {
				stack[depth>>3] |= 1 << (depth & 7)
			} else {
				stack[depth>>3] &^= 1 << (depth & 7)
			}
			depth++
		case '}', ']':
			if depth == 0 {
				return j, scanErr("json", j, "unbalanced bracket")
			}
			depth--
			isObj := stack[depth>>3]&(1<<(depth&7)) != 0
			if isObj != (b[j] == '}') {
				return j, scanErr("json", j, "mismatched bracket")
			}
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return len(b), scanErr("json", i, "unterminated object or array")
}

// parseInt parses a JSON integer without allocating.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		nv := v*10 + uint64(c-'0')
		if nv/10 != v || nv > 1<<63 {
			return 0, false
		}
		v = nv
	}
	if neg {
		return -int64(v), true
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}

// objectField returns the raw value of key in the JSON object obj (top level only).
func objectField(obj []byte, key string) ([]byte, bool, error) {
	var found []byte
	ok := false
	err := eachField(obj, func(k, v []byte) bool {
		if string(k) == key {
			found, ok = v, true
			return false
		}
		return true
	})
	return found, ok, err
}

// eachField calls fn with each top-level key (raw, without quotes) and raw
// value of the JSON object obj until fn returns false.
func eachField(obj []byte, fn func(key, val []byte) bool) error {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return scanErr("json", i, "expected an object")
	}
	i++
	for {
		i = skipWS(obj, i)
		if i >= len(obj) {
			return scanErr("json", i, "unterminated object")
		}
		if obj[i] == '}' {
			return nil
		}
		if obj[i] != '"' {
			return scanErr("json", i, "expected a key")
		}
		kEnd, err := skipString(obj, i)
		if err != nil {
			return err
		}
		key := obj[i+1 : kEnd-1]
		i = skipWS(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return scanErr("json", i, "expected ':'")
		}
		i = skipWS(obj, i+1)
		vEnd, err := skipValue(obj, i)
		if err != nil {
			return err
		}
		if !fn(key, obj[i:vEnd]) {
			return nil
		}
		i = skipWS(obj, vEnd)
		if i < len(obj) && obj[i] == ',' {
			i++
			continue
		}
		if i < len(obj) && obj[i] == '}' {
			return nil
		}
		return scanErr("json", i, "expected ',' or '}'")
	}
}

// eachElement calls fn with the raw bytes of each element of the JSON array arr.
func eachElement(arr []byte, fn func(val []byte)) error {
	i := skipWS(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return scanErr("json", i, "expected an array")
	}
	i = skipWS(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for {
		i = skipWS(arr, i)
		end, err := skipValue(arr, i)
		if err != nil {
			return err
		}
		fn(arr[i:end])
		i = skipWS(arr, end)
		if i < len(arr) && arr[i] == ',' {
			i++
			continue
		}
		if i < len(arr) && arr[i] == ']' {
			return nil
		}
		return scanErr("json", i, "expected ',' or ']'")
	}
}

// parseSnowflake reads a snowflake given as a JSON string ("123") or number.
func parseSnowflake(v []byte) (uint64, bool) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if len(v) == 0 || len(v) > 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	return n, err == nil
}

// unquote decodes a JSON string value (rare paths: session ids, URLs).
func unquote(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	s, err := strconv.Unquote(string(jsonToGoQuote(v)))
	return s, err == nil
}

// jsonToGoQuote rewrites JSON-only escapes ("\/") so strconv.Unquote accepts the string.
func jsonToGoQuote(v []byte) []byte {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			if v[i+1] == '/' {
				out = append(out, '/')
				i++
				continue
			}
			out = append(out, v[i], v[i+1])
			i++
			continue
		}
		out = append(out, v[i])
	}
	return out
}
