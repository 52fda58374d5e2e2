// Package bus carries every dispatch of a bot's shards to its workers
// through NATS JetStream, exactly once, and their gateway commands back.
//
// # The contract workers rely on
//
// Events. Every dispatch is published to one stream (StreamConfig.Name,
// default "SHARDTOP", subjects PREFIX.ev.>) on the subject
//
//	PREFIX.ev.EVENT_NAME.SHARD_ID      e.g. shardtop.ev.MESSAGE_CREATE.3
//
// PREFIX is "shardtop" unless configured. The message body is Discord's
// "d", byte for byte. The headers are
//
//	Shardtop-Shard     "3/16"                 the shard's [id, count]
//	Shardtop-Seq       "1234"                 the dispatch's sequence number in its session
//	Shardtop-Session   "9f3c…"                the gateway session ID
//	Shardtop-Event     "MESSAGE_CREATE"       Discord's event name (t)
//	Shardtop-Guild     "41771983423143937"    the guild ID, when the event has one
//	Shardtop-Received  RFC 3339, nanoseconds  when shardtop received the frame
//	Nats-Msg-Id        "SESSION:SEQ"          JetStream's de-duplication key
//
// Exactly once: a dispatch Discord sends again (its replay after a resume,
// which is how shardtop retries a publish that failed) has the same
// session and sequence, hence
// the same Nats-Msg-Id, and the stream's duplicate window drops it. The
// sequence shardtop saves for a resume is never ahead of the last event the
// stream has acknowledged for that shard, so after a crash Discord replays
// what was not acknowledged. Per shard, events are in the stream in
// Discord's order.
//
// Lost events. When events can no longer be replayed (the bus was down
// longer than Discord keeps a session), shardtop counts them and publishes
// a marker on PREFIX.ev.SHARDTOP_LOST.SHARD_ID with the headers above
// (Shardtop-Seq is the first lost sequence) plus
//
//	Shardtop-Lost-From  first lost sequence
//	Shardtop-Lost-To    last lost sequence
//	Shardtop-Lost       how many
//
// Commands. A worker sends a gateway command by NATS request-reply to
//
//	PREFIX.cmd.SHARD_ID             a shard
//	PREFIX.cmd.guild.GUILD_ID       the shard serving a guild (splits included)
//
// with the body {"op": N, "d": {...}} for presence update (3), voice state
// update (4), request guild members (8) and request soundboard sounds (31);
// other ops are refused. The reply is JSON: {"ok": true}, or
// {"ok": false, "error": CODE, "message": TEXT} with CODE one of
// "unknown_shard", "not_ready", "too_large", "invalid_json", "refused_op",
// "invalid_payload", "rate_limited" (then also "retry_after_ms") and
// "failed" (anything else; the message says what). A "d" that is not a
// JSON object is "invalid_json"; one that lacks a field Discord requires
// for its op, or has one of the wrong type, is "invalid_payload", with a
// message naming the field: Discord would close the shard's connection
// (4001) over either. The fields checked are those Discord documents:
// op 3 since (integer or null), activities (array of {name, type}),
// status (online, dnd, idle, invisible, offline), afk (boolean); op 4
// guild_id, channel_id (or null), self_mute, self_deaf (booleans); op 8
// guild_id (one), one of query (string, with limit, an integer ≥ 0) or
// user_ids (one or an array of at most 100), presences (boolean) and
// nonce (a string of at most 32 bytes) if given; op 31 guild_ids (a
// non-empty array). Snowflakes are strings of digits; other fields pass
// as they are, and "d" goes to Discord byte for byte. Sent to
// PREFIX.cmd.guild.GUILD_ID, an op 4, 8 or 31 whose guild_id or
// guild_ids names another guild is "invalid_payload" too: the subject
// chose the shard. What Discord answers (member chunks, say) comes back
// as events on the stream.
package bus
