package shardlease

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shardtop/shardtop/store"
)

// recordVersion is the version field of the records this package writes.
// A record of another version is malformed to it: it never rewrites a
// record it does not fully understand.
const recordVersion = 1

// Bounds on what a record may hold, so a hostile or broken value cannot
// make every process allocate without limit.
const (
	maxValueSize = 64 << 10
	maxNodeLen   = 256
)

// Key identifies a shard: its ID and the shard count of its layout.
type Key struct{ ID, Count int }

// String returns the bucket key of k, "<id>.<count>".
func (k Key) String() string {
	return strconv.Itoa(k.ID) + "." + strconv.Itoa(k.Count)
}

// keyOf is the Key of a session.
func keyOf(s store.ShardState) Key { return Key{s.ShardID, s.ShardCount} }

// valid reports whether k names a shard shardtop could run.
func (k Key) valid() error {
	switch {
	case k.Count <= 0 || k.Count > store.MaxShardCount:
		return fmt.Errorf("shard count must be in [1, %d], got %d", store.MaxShardCount, k.Count)
	case k.ID < 0 || k.ID >= k.Count:
		return fmt.Errorf("shard ID must be in [0, %d), got %d", k.Count, k.ID)
	}
	return nil
}

// parseKey reads a bucket key "<id>.<count>" in canonical form.
func parseKey(s string) (Key, error) {
	a, b, ok := strings.Cut(s, ".")
	if !ok {
		return Key{}, fmt.Errorf("key %q is not <id>.<count>", s)
	}
	id, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil {
		return Key{}, fmt.Errorf("key %q is not <id>.<count>", s)
	}
	k := Key{id, n}
	if k.String() != s { // "+1.02" and the like
		return Key{}, fmt.Errorf("key %q is not in canonical form %q", s, k.String())
	}
	if err := k.valid(); err != nil {
		return Key{}, fmt.Errorf("key %q: %w", s, err)
	}
	return k, nil
}

// wireRecord is a record's value in the bucket.
type wireRecord struct {
	V       int          `json:"v"`
	Owner   string       `json:"owner"` // "" when free
	Epoch   uint64       `json:"epoch"` // counts the acquisitions
	Session *wireSession `json:"session,omitempty"`
}

// wireSession is a shard's session in a record; the shard is the key's.
type wireSession struct {
	ID        string    `json:"id"`
	Sequence  int64     `json:"seq"`
	ResumeURL string    `json:"resume_url,omitempty"`
	Guilds    int       `json:"guilds,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// value is a decoded record.
type value struct {
	owner   string
	epoch   uint64
	session store.ShardState // SessionID "" when there is none
}

// encode returns v's bytes for the record of k.
func encode(v value) ([]byte, error) {
	w := wireRecord{V: recordVersion, Owner: v.owner, Epoch: v.epoch}
	if v.session.SessionID != "" {
		s := v.session
		w.Session = &wireSession{ID: s.SessionID, Sequence: s.Sequence, ResumeURL: s.ResumeURL, Guilds: s.Guilds, UpdatedAt: s.UpdatedAt.UTC()}
	}
	return json.Marshal(w)
}

// decode reads the record of k from data, checking every field.
func decode(k Key, data []byte) (value, error) {
	if len(data) > maxValueSize {
		return value{}, fmt.Errorf("value is %d bytes, more than %d", len(data), maxValueSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields() // a field we do not know would be lost on rewrite
	var w wireRecord
	if err := dec.Decode(&w); err != nil {
		return value{}, fmt.Errorf("not a JSON lease record: %w", err)
	}
	if dec.More() {
		return value{}, errors.New("trailing data after the JSON record")
	}
	if w.V != recordVersion {
		return value{}, fmt.Errorf("version %d, this shardtop reads version %d", w.V, recordVersion)
	}
	if err := checkNode(w.Owner); err != nil && w.Owner != "" {
		return value{}, fmt.Errorf("owner: %w", err)
	}
	v := value{owner: w.Owner, epoch: w.Epoch, session: store.ShardState{ShardID: k.ID, ShardCount: k.Count}}
	if s := w.Session; s != nil {
		if err := checkSession(s.ID, s.Sequence, s.ResumeURL, s.Guilds); err != nil {
			return value{}, fmt.Errorf("session: %w", err)
		}
		v.session.SessionID, v.session.Sequence, v.session.ResumeURL = s.ID, s.Sequence, s.ResumeURL
		v.session.Guilds, v.session.UpdatedAt = s.Guilds, s.UpdatedAt
	}
	return v, nil
}

// checkNode reports whether name can own leases.
func checkNode(name string) error {
	switch {
	case name == "":
		return errors.New("node name must not be empty")
	case len(name) > maxNodeLen:
		return fmt.Errorf("node name is %d bytes, more than %d", len(name), maxNodeLen)
	case !utf8.ValidString(name):
		return errors.New("node name is not valid UTF-8")
	}
	return nil
}

// checkState reports whether st can be saved as a session (an empty
// SessionID saves "no session").
func checkState(st store.ShardState) error {
	if err := keyOf(st).valid(); err != nil {
		return err
	}
	if st.SessionID == "" {
		return nil
	}
	if y := st.UpdatedAt.UTC().Year(); !st.UpdatedAt.IsZero() && (y < 1 || y > 9999) {
		return fmt.Errorf("updated_at year must be in [1, 9999], got %d", y)
	}
	return checkSession(st.SessionID, st.Sequence, st.ResumeURL, st.Guilds)
}

// checkSession checks a session's fields as the state file does.
func checkSession(id string, seq int64, resumeURL string, guilds int) error {
	switch {
	case id == "":
		return errors.New("session ID must not be empty")
	case !utf8.ValidString(id) || len(id) > 1024:
		return errors.New("session ID is not valid UTF-8 of at most 1024 bytes")
	case seq < 0:
		return fmt.Errorf("sequence must not be negative, got %d", seq)
	case guilds < 0:
		return fmt.Errorf("guilds must not be negative, got %d", guilds)
	}
	if resumeURL != "" {
		rest, ok := strings.CutPrefix(resumeURL, "wss://")
		if !ok {
			rest, ok = strings.CutPrefix(resumeURL, "ws://")
		}
		if !ok || rest == "" || rest[0] == '/' || !utf8.ValidString(resumeURL) {
			return fmt.Errorf("resume URL must be a ws:// or wss:// URL, got %q", resumeURL)
		}
	}
	return nil
}
