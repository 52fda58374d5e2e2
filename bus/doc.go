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
//	Shardtop-Guild     "41771983423143937"    the guild the event is about, when it has one
//	Shardtop-Received  RFC 3339, nanoseconds  when shardtop received the frame (UTC)
//	Nats-Msg-Id        "SESSION:SEQ"          JetStream's de-duplication key
//
// (The guild is d's top-level "guild_id"; for GUILD_CREATE, GUILD_UPDATE
// and GUILD_DELETE, whose d is the guild, its "id".)
//
// Exactly once. Each event goes out with a core NATS publish whose reply
// subject is the bus's own; the stream's answer there (JetStream's publish
// acknowledgement) makes the event durable. The client retries nothing. An
// error answer or no answer within the ack timeout (WithAckTimeout) fails
// the event, and NATS disconnecting fails every event in flight; the shard
// then takes no more events, is closed resumable and held until the bus
// takes events again, and resumes from the sequence before its first event
// not durable, so Discord replays the rest in order. A replayed dispatch
// has the same session and sequence, hence the same Nats-Msg-Id: the
// stream drops what it already stored (stored before the failure, its
// answer lost) if the replay comes within the duplicate window
// (StreamConfig.Duplicates) of the first copy; later, it is stored twice.
// The sequence shardtop saves for a resume is never ahead of the last
// event the stream has acknowledged for that shard, so after a crash
// Discord replays what was not acknowledged. Per shard, events are in the
// stream in Discord's order, except when a publish fails and later events
// of its shard, already in flight, are stored (a replicated stream's
// leader change, say): the failed one's replay is stored after them.
//
// Lost events. When events can no longer be replayed (the session of a held
// shard could not be resumed, or an event of a session the shard has left
// failed, or an event was larger than the server's max_payload), shardtop
// looks in the stream for those of them that were stored anyway, counts
// the rest and publishes a marker on PREFIX.ev.SHARDTOP_LOST.SHARD_ID. Its
// headers are Shardtop-Shard, Shardtop-Session (the session that lost
// them), Shardtop-Event "SHARDTOP_LOST", Shardtop-Received (when the
// marker was made), Shardtop-Seq (the first sequence of the range) and
//
//	Shardtop-Lost-From  first sequence of the range
//	Shardtop-Lost-To    last sequence of the range
//	Shardtop-Lost       how many of From..To the stream lacks
//	Nats-Msg-Id         "SESSION:lost:FROM-TO"
//
// and its body is {"shard":[ID,COUNT],"session":"…","from":F,"to":T,"lost":N}.
// A marker is published only when N > 0, once the loss is known: it may
// follow events of the shard's new session. Events a crashed process had
// received and the stream lacks are not counted: the process that knew of
// them is gone (after a restart Discord replays them if the session still
// resumes).
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
