package discordsim

import (
	"sync"
	"time"
)

// Overlap is one moment when a connection started serving a shard that
// another connection of a different session was serving already: two
// sessions of one shard live at once (Server.Overlaps). A shard is a
// (ShardID, ShardCount) pair, as identified: shard 1 of 2 and shard 1 of 4
// are different shards (Discord lets both run, for a re-shard).
type Overlap struct {
	ShardID, ShardCount int
	// Sessions are the session already live and the one that joined it.
	Sessions [2]string
	// Live is how many connections served the shard once it joined (2 or more).
	Live int
	At   time.Time
}

// maxOverlapsKept bounds Stats.Overlaps: every overlap is counted
// (Stats.ShardOverlaps), the first maxOverlapsKept are described.
const maxOverlapsKept = 100

// shardKey names a shard as identified.
type shardKey struct{ id, count int }

// liveConn is one connection serving a shard, with its session.
type liveConn struct {
	c       *conn
	session string
}

// liveShards counts the live connections of every shard: a connection is
// live from READY or RESUMED until it stops serving its session (it closes,
// the server starts closing it, the client's close frame arrives, op 9 d=false
// ends its session, or another connection resumes the session).
//
// Its mutex is a leaf: it is taken while conn.mu is held (so a connection's
// live flag and its entry here change together) and takes no other lock.
type liveShards struct {
	mu       sync.Mutex
	live     map[shardKey][]liveConn
	maxLive  int
	overlaps int
	kept     []Overlap
}

// begin records c serving sess. A connection of another session live on
// the same shard makes it an overlap; one of the same session cannot be
// (resume releases the old connection before the new one is live), and
// would not count as one.
func (l *liveShards) begin(c *conn, sess *session, now time.Time) {
	k := shardKey{sess.shardID, sess.shardCount}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live == nil {
		l.live = make(map[shardKey][]liveConn)
	}
	others := l.live[k]
	l.live[k] = append(others, liveConn{c: c, session: sess.id})
	l.maxLive = max(l.maxLive, len(others)+1)
	for _, o := range others {
		if o.session == sess.id {
			continue
		}
		l.overlaps++
		if len(l.kept) < maxOverlapsKept {
			l.kept = append(l.kept, Overlap{ShardID: k.id, ShardCount: k.count,
				Sessions: [2]string{o.session, sess.id}, Live: len(others) + 1, At: now})
		}
		return
	}
}

// end forgets c serving sess.
func (l *liveShards) end(c *conn, sess *session) {
	k := shardKey{sess.shardID, sess.shardCount}
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := l.live[k]
	for i, o := range cs {
		if o.c == c {
			cs[i] = cs[len(cs)-1]
			cs[len(cs)-1] = liveConn{}
			cs = cs[:len(cs)-1]
			break
		}
	}
	if len(cs) == 0 {
		delete(l.live, k)
	} else {
		l.live[k] = cs
	}
}

// snapshot returns the counters and a copy of the described overlaps.
func (l *liveShards) snapshot() (overlaps, maxLive int, kept []Overlap) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.overlaps, l.maxLive, append([]Overlap(nil), l.kept...)
}

// ShardOverlaps is how many times a connection started serving a shard
// (READY or RESUMED sent) while a connection of another session was
// serving it: two sessions of one shard live at once. A resume that takes
// a session over from its still open connection is not one (the old
// connection is dropped first). A cluster of supervisors sharing one bot
// must keep this at 0.
func (s *Server) ShardOverlaps() int {
	n, _, _ := s.shards.snapshot()
	return n
}

// Overlaps describes the first overlaps (at most 100), oldest first.
func (s *Server) Overlaps() []Overlap {
	_, _, kept := s.shards.snapshot()
	return kept
}

// MaxLivePerShard is the most connections ever live at once for one shard
// ((shard_id, shard_count) as identified); 1 means never two.
func (s *Server) MaxLivePerShard() int {
	_, m, _ := s.shards.snapshot()
	return m
}

// startLiveLocked marks c live for sess and records it (unless the
// connection is closing: then it serves nothing); c.mu is held.
func (c *conn) startLiveLocked(sess *session) {
	c.live = true
	if c.counted == nil && !c.over {
		c.counted = sess
		c.srv.shards.begin(c, sess, time.Now())
	}
}

// endLiveLocked stops counting c as serving a session; c.mu is held.
func (c *conn) endLiveLocked() {
	if c.counted != nil {
		c.srv.shards.end(c, c.counted)
		c.counted = nil
	}
}

// peerClosing runs when the client's close frame arrives, before it is
// answered: from then on the connection serves nothing, so a client that
// has seen the answer knows the simulator no longer counts it live.
func (c *conn) peerClosing() {
	c.mu.Lock()
	c.over = true
	c.endLiveLocked()
	c.mu.Unlock()
}
