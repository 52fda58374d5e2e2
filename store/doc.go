// Package store persists each shard's gateway session (session ID, last
// sequence number, resume URL and guild count) so that a restarted
// supervisor resumes its sessions instead of spending identifies from the
// daily budget.
//
// The records live in a human-readable TOML file written by [File]:
//
//	# shardtop session state. Written by shardtop; edit only while it is stopped.
//	version = 1
//
//	[[shard]]
//	id = 0
//	count = 16
//	session_id = "9f3c…"
//	sequence = 1234
//	resume_url = "wss://gateway-us-east1-b.discord.gg"
//	updated_at = 2026-11-22T05:00:00Z
//	guilds = 1873
//
// guilds is the shard's guild count when the session was saved: a resumed
// shard gets no READY, so it shows this count until its next READY. It is
// optional when reading (files written before it existed read as 0) and
// always written.
//
// The file also keeps, per identify bucket (shard_id % max_concurrency),
// when the bucket last sent an identify, so that a supervisor restarted
// within one identify window waits it out instead of earning op 9
// ([File.LastIdentifies], [File.SetLastIdentifies]):
//
//	[[bucket]]
//	id = 0
//	max_concurrency = 16
//	last_identify = 2026-11-22T05:00:01.250Z
//
// Records are keyed by (shard ID, shard count), because during a re-shard the
// same ID exists under two counts for a while. The file never holds the bot
// token: [ShardState] has no field for it.
//
// # Durability
//
// Put only changes memory; a background writer coalesces changes into at most
// one write per flush interval ([WithFlushInterval]). Flush writes at once and
// Close writes a final time. Every write goes to a temporary file in the same
// directory, is fsynced, renamed over the state file, and the directory is
// fsynced, so a crash at any point leaves either the old or the new file,
// never a mix.
//
// # Exclusive use
//
// [OpenFile] takes an exclusive flock on path+".lock" (a sibling file, since
// each write replaces the state file's inode) and writes its PID there. A
// second supervisor on the same state file gets [ErrLocked].
//
// # Links and special files
//
// A state file that is a symbolic link is resolved once by [OpenFile]: the
// file it points to is locked, read and replaced by every write, and the
// link stays. The lock file itself is never followed. A state or lock path
// that is not a regular file (a device, named pipe, directory or socket)
// is refused with [ErrNotRegular] and left alone, and a state file larger
// than [MaxFileSize] is refused as corrupt without being read.
//
// # Other backends
//
// Consumers declare the interface they need (the manager does); *File is
// shaped so that it, and a later backend such as Redis, can satisfy:
//
//	type SessionStore interface {
//		Load() []store.ShardState
//		Put(store.ShardState) error
//		Delete(shardID, shardCount int) error
//		Flush(ctx context.Context) error
//		Close() error
//	}
//
// Put and Delete return errors (rather than nothing) because a remote backend
// can fail there, and because Put rejects a state that could not be read back.
package store
