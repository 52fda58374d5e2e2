package gateway

import "bytes"

// Events returns how many dispatches the shard has received, as Stats does,
// for a caller that samples it often (an events/s rate over thousands of
// shards): one atomic load, no lock, nothing copied.
func (s *Shard) Events() uint64 { return s.events.Load() }

// Sequence returns the last dispatch sequence number received, as Stats
// does: one atomic load, for a caller that checks thousands of shards for
// a sequence worth saving.
func (s *Shard) Sequence() int64 { return s.seq.Load() }

// GuildID returns the ID of the guild the dispatch is about, as Discord
// sends it (a snowflake string), if it has one: the top-level "guild_id",
// or for GUILD_CREATE, GUILD_UPDATE and GUILD_DELETE (whose d is the
// guild) its "id". It scans the top level of Data without decoding it.
func (d Dispatch) GuildID() (string, bool) {
	raw, ok, err := objectField(d.Data, guildKey(d.Event))
	if err != nil || !ok {
		return "", false
	}
	id, ok := unquote(raw)
	if !ok || id == "" {
		return "", false
	}
	return id, true
}

// guildKey is the top-level key of event's d holding its guild's ID.
func guildKey(event string) string {
	switch event {
	case "GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE":
		return "id"
	}
	return "guild_id"
}

// AppendGuildID appends the dispatch's top-level "guild_id" to dst, as
// GuildID returns it, and reports whether it has one: for a caller that
// copies it into a buffer of its own without making a string.
func (d Dispatch) AppendGuildID(dst []byte) ([]byte, bool) {
	raw, ok, err := objectField(d.Data, guildKey(d.Event))
	if err != nil || !ok || len(raw) < 3 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return dst, false
	}
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 {
		return append(dst, inner...), true
	}
	id, ok := unquote(raw) // escaped: rare, and not a snowflake
	if !ok || id == "" {
		return dst, false
	}
	return append(dst, id...), true
}
