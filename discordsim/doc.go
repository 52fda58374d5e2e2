// Package discordsim is a local fake Discord: the REST calls a shard
// supervisor needs (GET /api/v10/gateway/bot, GET /api/v10/gateway, GET
// /api/v10/users/@me, which gives the same bot user as READY) and a
// gateway v10 websocket server, started on loopback by tests, benchmarks or
// `shardtop sim`. It follows shared/docs/gateway-protocol.md and shares no
// code with the client, so a misreading of the protocol cannot hide by being
// mirrored on both sides.
//
// Choices where Discord's docs are silent (field-reported behaviour):
//   - An identify less than IdentifyWindow after the previous accepted
//     identify of its bucket is answered with op 9 d=false (no READY) and
//     counted in Stats.IdentifyViolations. The connection stays open; the
//     client may identify again on it.
//   - An identify when the daily budget is spent is closed with 4004
//     (Discord resets the token at zero, so the token stops authenticating).
//     Unlike Discord, other sessions are not terminated and the token keeps
//     working for REST and resumes.
//   - The send limit is a sliding window (at most SendLimit payloads in any
//     SendWindow, heartbeats included); the payload over it is closed with 4008.
//   - Presence updates (op 3) are limited to PresenceLimit per PresenceWindow
//     (Discord's documented 5 per 20 s, sliding); the one over it is closed
//     with 4008. Discord's docs give the limit, not the code.
//   - An Identify without token, properties (an object) or intents is closed
//     with 4002; Discord requires them but does not name the code. shard is
//     optional (default [0, 1]).
//   - A client that stops reading is disconnected (TCP closed): every write
//     has a deadline (WriteTimeout), and a connection whose command queue
//     fills is dropped at once (Stats.SlowClientDrops). Nothing the server
//     does for other connections ever waits on it.
//   - A client that sends no heartbeat for HeartbeatTimeout is closed with 4009
//     (session timed out) and its session ends.
//   - v other than 10 is closed with 4012; encoding other than json, or an
//     unknown compress value, is closed with 4000 and a reason saying why.
//   - A binary message from the client, invalid JSON or a payload over 4096
//     bytes is closed with 4002. Unknown opcodes close with 4001; opcodes 3, 4,
//     8 and 31 before Identify/Resume close with 4003; Identify or Resume on an
//     authenticated connection closes with 4005.
//   - Gateway commands (3, 4, 8, 31) are recorded (Server.Commands) and
//     checked: a d that is not a valid payload for its op (not an object, a
//     required field missing, a field of the wrong type, op 8 with more than
//     one guild or over 100 user_ids) is closed with 4001, "an invalid
//     payload for an opcode" in Discord's table. A command about a guild the
//     shard does not hold is accepted and not answered. Op 8 is answered with
//     GUILD_MEMBERS_CHUNK (or RATE_LIMITED: whole member lists, one per guild
//     per MemberRequestWindow), op 31 with SOUNDBOARD_SOUNDS per guild, op 4
//     with VOICE_STATE_UPDATE (and VOICE_SERVER_UPDATE on joining), op 3 with
//     nothing (a bot gets no PRESENCE_UPDATE for itself here). The answers
//     are dispatches of the session, numbered and replayed like any other.
//   - Sessions end (can no longer be resumed) when the client closes with
//     1000/1001, or the server closes with a code whose documented action is
//     "identify anew" or "never" (4004, 4007, 4009, 4010-4014), or on op 9
//     d=false. Any other end keeps the session resumable for SessionTTL.
//   - A detached session keeps receiving EventRate traffic into its replay
//     buffer (Discord queues events), so a resume really replays something.
//   - EventRate traffic a connection cannot keep up with is not owed without
//     end: once 16384 events wait for its writer, the rate makes no more for
//     it until it catches up, so a lowered rate takes effect at once.
//   - A resume whose session is unknown, expired or ended gets op 9 d=false; a
//     wrong token closes 4004; a seq above the session's last or older than the
//     replay buffer closes 4007. The session's previous connection, if still
//     open, is dropped (TCP closed, no close frame): Discord ends it, its
//     docs give no close code for it, so none is invented. It stops serving
//     the session before the new connection's RESUMED: a takeover, never an
//     overlap.
//   - Overlaps (the simulator's own check, for clusters of supervisors
//     sharing one bot): a connection is live for its shard, (shard_id,
//     shard_count) as identified, from READY or RESUMED until it stops
//     serving the session: the server starts closing it, the client's close
//     frame arrives (before it is answered), TCP closes, op 9 d=false, or a
//     resume takes the session over. A connection going live while one of
//     another session is live for the same shard is an overlap
//     (Server.ShardOverlaps, Stats.ShardOverlaps); Server.MaxLivePerShard
//     and Server.MaxLiveSessions are the most live at once. The same shard number
//     under another shard count is another shard (a re-shard runs both).
//
// The control endpoints (/_sim/...) are the simulator's own, not Discord's.
// A request carrying an Origin other than the simulator's is refused (403),
// so a web page cannot drive them cross-site; with Config.ControlToken they
// need "Authorization: Bearer TOKEN", and an Addr that is not loopback
// requires one. The URLs handed to clients carry Config.Advertise, never a
// wildcard address.
//
// Output compression uses one persistent encoder per connection: zlib-stream
// is a klauspost zlib writer (BestSpeed) flushed after each payload, so each
// binary message ends with 00 00 ff ff; zstd-stream is a klauspost zstd
// encoder (SpeedFastest, concurrency 1, 32 KiB window, lower-memory mode)
// flushed after each payload as one binary message, its frame never ended.
// The 32 KiB window bounds what a client decoder must keep. Bursts are
// compressed on that same context ahead of sending, in chunks, with nothing
// else interleaved on it while a chunk is prepared (burst.go).
package discordsim
