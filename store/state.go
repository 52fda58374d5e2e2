package store

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// ShardState is what a shard needs to resume its gateway session after a
// restart. It never holds the bot token.
type ShardState struct {
	// ShardID and ShardCount identify the shard; together they are the key.
	ShardID, ShardCount int
	// SessionID is the session_id from READY.
	SessionID string
	// Sequence is the last dispatch sequence number received.
	Sequence int64
	// ResumeURL is resume_gateway_url from READY (may be empty).
	ResumeURL string
	// UpdatedAt is when the session was last known alive (may be zero).
	UpdatedAt time.Time
	// Guilds is the shard's guild count when the session was saved, shown
	// for a resumed shard until its next READY (a resume gets none). Not
	// sent to Discord. Optional in the file (0 when absent), never negative.
	Guilds int
}

// key identifies a record.
type key struct{ id, count int }

func keyOf(s ShardState) key { return key{s.ShardID, s.ShardCount} }

// fieldError says which key of a record is wrong and why.
type fieldError struct {
	key string // TOML key name
	msg string
}

func (e *fieldError) Error() string { return fmt.Sprintf("key %q: %s", e.key, e.msg) }

// validate reports the first field of s that could not be stored and read
// back faithfully, or nil. Keys are the TOML names.
func validate(s ShardState) *fieldError {
	switch {
	case s.ShardCount <= 0:
		return &fieldError{"count", fmt.Sprintf("must be greater than 0, got %d", s.ShardCount)}
	case s.ShardCount > MaxShardCount:
		return &fieldError{"count", fmt.Sprintf("must be at most %d (MaxShardCount), got %d", MaxShardCount, s.ShardCount)}
	case s.ShardID < 0 || s.ShardID >= s.ShardCount:
		return &fieldError{"id", fmt.Sprintf("must be in [0, count) = [0, %d), got %d", s.ShardCount, s.ShardID)}
	case s.SessionID == "":
		return &fieldError{"session_id", "must not be empty"}
	case !utf8.ValidString(s.SessionID):
		return &fieldError{"session_id", "is not valid UTF-8"}
	case s.Sequence < 0:
		return &fieldError{"sequence", fmt.Sprintf("must not be negative, got %d", s.Sequence)}
	case s.Guilds < 0:
		return &fieldError{"guilds", fmt.Sprintf("must not be negative, got %d", s.Guilds)}
	}
	if !s.UpdatedAt.IsZero() && (s.UpdatedAt.UTC().Year() < 1 || s.UpdatedAt.UTC().Year() > 9999) {
		return &fieldError{"updated_at", fmt.Sprintf("year must be in [1, 9999], got %d", s.UpdatedAt.UTC().Year())}
	}
	if s.ResumeURL != "" {
		if !utf8.ValidString(s.ResumeURL) {
			return &fieldError{"resume_url", "is not valid UTF-8"}
		}
		// A prefix check, not url.Parse: Put is on the per-event path and
		// url.Parse allocates.
		rest, ok := strings.CutPrefix(s.ResumeURL, "wss://")
		if !ok {
			rest, ok = strings.CutPrefix(s.ResumeURL, "ws://")
		}
		if !ok || rest == "" || rest[0] == '/' {
			return &fieldError{"resume_url", fmt.Sprintf("must be a ws:// or wss:// URL, got %q", s.ResumeURL)}
		}
	}
	return nil
}

// equalState reports whether a and b hold the same values (times compared as
// instants).
func equalState(a, b ShardState) bool {
	return a.ShardID == b.ShardID && a.ShardCount == b.ShardCount &&
		a.SessionID == b.SessionID && a.Sequence == b.Sequence &&
		a.ResumeURL == b.ResumeURL && a.UpdatedAt.Equal(b.UpdatedAt) && a.Guilds == b.Guilds
}

// sortStates orders records by (count, id), the file's order.
func sortStates(s []ShardState) {
	slices.SortFunc(s, func(a, b ShardState) int {
		return cmp.Or(cmp.Compare(a.ShardCount, b.ShardCount), cmp.Compare(a.ShardID, b.ShardID))
	})
}
