package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// header is the first line of every state file. The toml encoder cannot
// write comments, so it is written before the encoder's output.
const header = "# shardtop session state. Written by shardtop; edit only while it is stopped.\n"

// formatVersion is the only version this package reads and writes.
const formatVersion = 1

// fileDoc and shardDoc are the file's shape for the encoder.
type fileDoc struct {
	Version int        `toml:"version"`
	Shard   []shardDoc `toml:"shard"`
}

type shardDoc struct {
	ID        int       `toml:"id"`
	Count     int       `toml:"count"`
	SessionID string    `toml:"session_id"`
	Sequence  int64     `toml:"sequence"`
	ResumeURL string    `toml:"resume_url,omitempty"`
	UpdatedAt time.Time `toml:"updated_at,omitempty"`
	Guilds    int       `toml:"guilds"`
}

// encode appends the file for states (already sorted) to buf. docs is
// scratch space reused between calls; the grown slice is returned.
func encode(buf *bytes.Buffer, states []ShardState, docs []shardDoc) ([]shardDoc, error) {
	docs = docs[:0]
	for _, s := range states {
		docs = append(docs, shardDoc{
			ID: s.ShardID, Count: s.ShardCount, SessionID: s.SessionID,
			Sequence: s.Sequence, ResumeURL: s.ResumeURL, UpdatedAt: s.UpdatedAt.UTC(),
			Guilds: s.Guilds,
		})
	}
	buf.WriteString(header)
	enc := toml.NewEncoder(buf)
	enc.Indent = ""
	err := enc.Encode(fileDoc{Version: formatVersion, Shard: docs})
	clear(docs) // drop string references held by the scratch space
	return docs, err
}

// shardKeys lists the keys of a [[shard]] table; required ones first.
var shardKeys = []struct {
	name     string
	required bool
}{
	{"id", true}, {"count", true}, {"session_id", true}, {"sequence", true},
	{"resume_url", false}, {"updated_at", false}, {"guilds", false},
}

// decode parses and validates a state file. Errors are *FileError naming
// path and, where it can be found, the line.
func decode(path string, data []byte) ([]ShardState, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &FileError{Path: path, Line: pe.Position.Line,
				Err: &corruptError{msg: "invalid TOML: " + pe.Message, cause: pe}}
		}
		return nil, &FileError{Path: path, Err: &corruptError{msg: "invalid TOML: " + err.Error(), cause: err}}
	}
	bad := func(entry int, key, format string, args ...any) error {
		return &FileError{Path: path, Line: lineOf(data, entry, key), Entry: entry, Key: key,
			Err: &corruptError{msg: fmt.Sprintf(format, args...)}}
	}

	if len(doc) == 0 {
		// An empty file (touch state.toml) or one of only blanks and
		// comments holds no sessions; nothing in it could be lost.
		return nil, nil
	}
	for k := range doc {
		if k != "version" && k != "shard" {
			return nil, bad(0, k, "unknown key (this file has only version and [[shard]] tables)")
		}
	}
	v, ok := doc["version"]
	if !ok {
		return nil, bad(0, "", "missing version (expected version = %d)", formatVersion)
	}
	if n, ok := v.(int64); !ok || n != formatVersion {
		return nil, bad(0, "version", "unsupported version %s (this shardtop reads version %d)", tomlValue(v), formatVersion)
	}
	raw, ok := doc["shard"]
	if !ok {
		return nil, nil
	}
	tables, ok := raw.([]map[string]any)
	if !ok {
		// An empty or mixed array decodes as []any; an empty one is fine.
		if arr, isArr := raw.([]any); isArr && len(arr) == 0 {
			return nil, nil
		}
		return nil, bad(0, "shard", "must be an array of tables ([[shard]]), got %s", tomlType(raw))
	}

	states := make([]ShardState, 0, len(tables))
	first := make(map[key]int, len(tables)) // key -> 1-based entry
	for i, t := range tables {
		entry := i + 1
		for k := range t {
			if !knownShardKey(k) {
				return nil, bad(entry, k, "unknown key")
			}
		}
		for _, sk := range shardKeys {
			if _, ok := t[sk.name]; sk.required && !ok {
				return nil, bad(entry, "", "missing key %q", sk.name)
			}
		}
		var s ShardState
		var err error
		if s.ShardID, err = intKey(t, "id"); err != nil {
			return nil, bad(entry, "id", "%v", err)
		}
		if s.ShardCount, err = intKey(t, "count"); err != nil {
			return nil, bad(entry, "count", "%v", err)
		}
		seq, ok := t["sequence"].(int64)
		if !ok {
			return nil, bad(entry, "sequence", "must be an integer, got %s", tomlType(t["sequence"]))
		}
		s.Sequence = seq
		if s.SessionID, ok = t["session_id"].(string); !ok {
			return nil, bad(entry, "session_id", "must be a string, got %s", tomlType(t["session_id"]))
		}
		if v, present := t["resume_url"]; present {
			if s.ResumeURL, ok = v.(string); !ok {
				return nil, bad(entry, "resume_url", "must be a string, got %s", tomlType(v))
			}
		}
		if v, present := t["updated_at"]; present {
			tm, ok := v.(time.Time)
			if !ok || isLocalTime(tm) {
				return nil, bad(entry, "updated_at", "must be a date-time with offset (like 2026-11-22T05:00:00Z), got %s", tomlType(v))
			}
			s.UpdatedAt = tm
		}
		if _, present := t["guilds"]; present {
			if s.Guilds, err = intKey(t, "guilds"); err != nil {
				return nil, bad(entry, "guilds", "%v", err)
			}
		}
		if fe := validate(s); fe != nil {
			return nil, bad(entry, fe.key, "%s (shard %d of %d)", fe.msg, s.ShardID, s.ShardCount)
		}
		if prev, dup := first[keyOf(s)]; dup {
			return nil, bad(entry, "id", "duplicate shard %d of %d (already in [[shard]] #%d)", s.ShardID, s.ShardCount, prev)
		}
		first[keyOf(s)] = entry
		states = append(states, s)
	}
	return states, nil
}

func knownShardKey(k string) bool {
	for _, sk := range shardKeys {
		if sk.name == k {
			return true
		}
	}
	return false
}

// intKey reads an integer that must fit in an int.
func intKey(t map[string]any, k string) (int, error) {
	n, ok := t[k].(int64)
	if !ok {
		return 0, fmt.Errorf("must be an integer, got %s", tomlType(t[k]))
	}
	if n < math.MinInt || n > math.MaxInt {
		return 0, fmt.Errorf("%d is out of range", n)
	}
	return int(n), nil
}

// isLocalTime reports whether the toml decoder produced tm from a datetime
// without an offset (or a bare date or time); those have no fixed instant.
func isLocalTime(tm time.Time) bool {
	switch tm.Location().String() {
	case "datetime-local", "date-local", "time-local":
		return true
	}
	return false
}

// tomlType names the TOML type of a decoded value, for messages.
func tomlType(v any) string {
	switch v := v.(type) {
	case int64:
		return "integer"
	case float64:
		return "float"
	case string:
		return "string"
	case bool:
		return "boolean"
	case time.Time:
		if isLocalTime(v) {
			return "local " + strings.TrimSuffix(v.Location().String(), "-local")
		}
		return "date-time"
	case []map[string]any, []any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

// tomlValue shows a decoded scalar for messages.
func tomlValue(v any) string {
	switch v := v.(type) {
	case int64:
		return fmt.Sprint(v)
	case string:
		return fmt.Sprintf("%q", v)
	}
	return "(" + tomlType(v) + ")"
}

// lineOf finds the 1-based line where key is set in the entry-th [[shard]]
// table (entry 0: the top level); with key "" it finds the table's header.
// toml.MetaData does not expose key positions (and would give one position
// per key name for all [[shard]] tables), so this scans the text. It is a
// best effort for files in the usual one-key-per-line form and returns 0
// when it cannot tell; errors then still name the entry and key.
func lineOf(data []byte, entry int, key string) int {
	cur, shards := 0, 0 // cur: current table; 0 top level, -1 some other table
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case t == "" || t[0] == '#':
			continue
		case strings.HasPrefix(t, "[["):
			name, _, _ := strings.Cut(t[2:], "]]")
			cur = -1
			if unquote(name) == "shard" {
				shards++
				cur = shards
			}
			if key == "" && cur == entry && entry > 0 {
				return i + 1
			}
			continue
		case t[0] == '[':
			cur = -1
			continue
		}
		if cur != entry {
			continue
		}
		k, _, ok := strings.Cut(t, "=")
		if ok && unquote(k) == key {
			return i + 1
		}
	}
	return 0
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}
