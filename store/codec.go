package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// header is the first line of every state file. The toml encoder cannot
// write comments, so it is written before the encoder's output.
const header = "# shardtop session state. Written by shardtop; edit only while it is stopped.\n"

// formatVersion is the only version this package reads and writes.
const formatVersion = 1

// fileDoc, shardDoc and bucketDoc are the file's shape for the encoder.
type fileDoc struct {
	Version int         `toml:"version"`
	Shard   []shardDoc  `toml:"shard"`
	Bucket  []bucketDoc `toml:"bucket,omitempty"`
}

type bucketDoc struct {
	ID             int       `toml:"id"`
	MaxConcurrency int       `toml:"max_concurrency"`
	LastIdentify   time.Time `toml:"last_identify"`
}

// bucketTimes is each identify bucket's last identify: at[i] for bucket i
// of conc buckets, zero where none is known. The zero value is none.
type bucketTimes struct {
	conc int
	at   []time.Time
}

func (b bucketTimes) equal(o bucketTimes) bool {
	if b.conc != o.conc || len(b.at) != len(o.at) {
		return false
	}
	for i := range b.at {
		if !b.at[i].Equal(o.at[i]) {
			return false
		}
	}
	return true
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

// encode appends the file for states (already sorted) and the buckets'
// last identifies to buf. docs is scratch space reused between calls; the
// grown slice is returned.
func encode(buf *bytes.Buffer, states []ShardState, buckets bucketTimes, docs []shardDoc) ([]shardDoc, error) {
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
	var bdocs []bucketDoc
	for i, at := range buckets.at {
		if !at.IsZero() {
			bdocs = append(bdocs, bucketDoc{ID: i, MaxConcurrency: buckets.conc, LastIdentify: at.UTC()})
		}
	}
	err := enc.Encode(fileDoc{Version: formatVersion, Shard: docs, Bucket: bdocs})
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
func decode(path string, data []byte) ([]ShardState, bucketTimes, error) {
	states, err := decodeShards(path, data)
	if err != nil {
		return nil, bucketTimes{}, err
	}
	buckets, err := decodeBuckets(path, data)
	if err != nil {
		return nil, bucketTimes{}, err
	}
	return states, buckets, nil
}

// decodeShards reads the version and the [[shard]] tables.
func decodeShards(path string, data []byte) ([]ShardState, error) {
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
		if k != "version" && k != "shard" && k != "bucket" {
			return nil, bad(0, k, "unknown key (this file has only version, [[shard]] and [[bucket]] tables)")
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

// bucketKeys are the keys of a [[bucket]] table, all required.
var bucketKeys = []string{"id", "max_concurrency", "last_identify"}

// decodeBuckets reads the [[bucket]] tables: the last identify of each
// identify bucket, all of one max_concurrency.
func decodeBuckets(path string, data []byte) (bucketTimes, error) {
	var doc struct {
		Bucket []map[string]any `toml:"bucket"`
	}
	if _, err := toml.Decode(string(data), &doc); err != nil {
		// decodeShards read the same text: only the shape can be wrong.
		return bucketTimes{}, &FileError{Path: path, Key: "bucket", Err: &corruptError{
			msg: "must be an array of tables ([[bucket]])", cause: err}}
	}
	bad := func(entry int, key, format string, args ...any) error {
		return &FileError{Path: path, Line: lineOfIn(data, "bucket", entry, key), Entry: entry, Table: "bucket", Key: key,
			Err: &corruptError{msg: fmt.Sprintf(format, args...)}}
	}
	var b bucketTimes
	first := make(map[int]int, len(doc.Bucket))
	for i, t := range doc.Bucket {
		entry := i + 1
		for k := range t {
			if !slices.Contains(bucketKeys, k) {
				return bucketTimes{}, bad(entry, k, "unknown key")
			}
		}
		for _, k := range bucketKeys {
			if _, ok := t[k]; !ok {
				return bucketTimes{}, bad(entry, "", "missing key %q", k)
			}
		}
		conc, err := intKey(t, "max_concurrency")
		if err == nil && (conc < 1 || conc > MaxMaxConcurrency) {
			err = fmt.Errorf("must be from 1 to %d, got %d", MaxMaxConcurrency, conc)
		}
		if err != nil {
			return bucketTimes{}, bad(entry, "max_concurrency", "%v", err)
		}
		if b.conc != 0 && conc != b.conc {
			return bucketTimes{}, bad(entry, "max_concurrency", "is %d, but [[bucket]] #1 has %d: all buckets are of one max_concurrency", conc, b.conc)
		}
		if b.conc == 0 {
			b.conc, b.at = conc, make([]time.Time, conc)
		}
		id, err := intKey(t, "id")
		if err == nil && (id < 0 || id >= conc) {
			err = fmt.Errorf("must be in [0, max_concurrency) = [0, %d), got %d", conc, id)
		}
		if err != nil {
			return bucketTimes{}, bad(entry, "id", "%v", err)
		}
		if prev, dup := first[id]; dup {
			return bucketTimes{}, bad(entry, "id", "duplicate bucket %d (already in [[bucket]] #%d)", id, prev)
		}
		first[id] = entry
		at, ok := t["last_identify"].(time.Time)
		if !ok || isLocalTime(at) || at.Year() < 1 || at.Year() > 9999 {
			return bucketTimes{}, bad(entry, "last_identify", "must be a date-time with offset (like 2026-11-22T05:00:00Z), got %s", tomlType(t["last_identify"]))
		}
		b.at[id] = at
	}
	return b, nil
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
func lineOf(data []byte, entry int, key string) int { return lineOfIn(data, "shard", entry, key) }

// lineOfIn is lineOf for the entry-th table of the array of tables named table.
func lineOfIn(data []byte, table string, entry int, key string) int {
	cur, shards := 0, 0 // cur: current table; 0 top level, -1 some other table
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case t == "" || t[0] == '#':
			continue
		case strings.HasPrefix(t, "[["):
			name, _, _ := strings.Cut(t[2:], "]]")
			cur = -1
			if unquote(name) == table {
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
