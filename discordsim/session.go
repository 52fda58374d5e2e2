package discordsim

import (
	"sync"
	"time"
)

// session is one gateway session: its identity, its sequence and replay
// buffer, and the connection it is attached to (nil while detached).
//
// Lock order: Server.mu, then session.mu, then conn.mu.
type session struct {
	id                  string
	shardID, shardCount int
	intents             int64
	guilds              []int

	// guarded by mu
	mu         sync.Mutex
	seq        int64
	ring       []entry // grows up to the replay buffer size, then wraps
	head       int     // index of the oldest entry once ring is full
	conn       *conn
	started    bool // READY was produced
	ended      bool
	detachedAt time.Time
	nextMsg    int // rotates guilds and message bodies
	// burstLeft is what a burst had still to send when the session left
	// its connection: Discord keeps producing a session's events while
	// its client is away, so the connection that resumes it sends them
	// after the replay.
	burstLeft int64
	// carryTo is the connection that last resumed the session and took
	// burstLeft: what another connection leaves afterwards goes to it.
	carryTo *conn

	credit float64 // event-rate credit; scheduler goroutine only
}

// appendLocked gives body the next seq and records it for replay.
func (s *session) appendLocked(b *dispatchBody, id, guild uint64, limit int) entry {
	s.seq++
	e := entry{seq: s.seq, id: id, guild: guild, b: b}
	if len(s.ring) < limit {
		s.ring = append(s.ring, e)
	} else if limit > 0 {
		s.ring[s.head] = e
		s.head = (s.head + 1) % limit
	}
	return e
}

// nextMessageLocked picks the next MESSAGE_CREATE: a body from the shared
// pool and one of the shard's guilds (guild 0: a DM, shard 0 only). ok is
// false if the shard gets no messages (no guilds and not shard 0).
func (s *session) nextMessageLocked(variety int) (b *dispatchBody, guild uint64, ok bool) {
	pool := sharedMessages()
	n := s.nextMsg
	s.nextMsg++
	if len(s.guilds) == 0 {
		if s.shardID != 0 {
			return nil, 0, false
		}
		return pool.dm[n%min(variety, len(pool.dm))], 0, true
	}
	return pool.guild[n%variety], GuildID(s.guilds[n%len(s.guilds)]), true
}

// oldestLocked is the seq of the oldest dispatch still held (seq+1 if none).
func (s *session) oldestLocked() int64 {
	if len(s.ring) == 0 {
		return s.seq + 1
	}
	return s.ring[s.head].seq
}

// sinceLocked copies the held dispatches after seq, oldest first.
func (s *session) sinceLocked(seq int64) []entry {
	n := len(s.ring)
	var out []entry
	for i := 0; i < n; i++ {
		e := s.ring[(s.head+i)%n]
		if e.seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// expiredLocked reports whether a detached session outlived ttl.
func (s *session) expiredLocked(now time.Time, ttl time.Duration) bool {
	return s.ended || (s.conn == nil && !s.detachedAt.IsZero() && now.Sub(s.detachedAt) > ttl)
}
