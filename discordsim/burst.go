package discordsim

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// A burst is prepared ahead of sending, a chunk at a time: the chunk's
// dispatches are numbered and rendered (and, on a compressed connection, run
// through the connection's stream context with a sync flush each) before its
// first frame is written, then its frames go out back to back. Compression
// (~15-20 us per realistic payload) then no longer paces the sending, so a
// client benchmark sees frames as fast as loopback carries them.
//
// A chunk ends at burstChunkEvents dispatches (Config.burstChunk) or once it
// holds burstChunkBytes of frames. At most two chunks exist at once (one
// being written while the next is prepared), so a burst holds at most
// ~2*burstChunkBytes (64 MiB) of frames however large n is.
const (
	burstChunkEvents = 1 << 16
	burstChunkBytes  = 32 << 20
)

// preparedChunk is a run of consecutive dispatches ready to send: frame i is
// data[ends[i-1]:ends[i]] (ends[-1] = 0).
type preparedChunk struct {
	data []byte
	ends []int
}

// preparer is one chunk being prepared by its own goroutine. While it runs
// it owns the session's numbering for this connection and the connection's
// compression context; the writer touches neither until it has received from
// done.
type preparer struct {
	stop atomic.Bool // cut the chunk short at the next emitChunk boundary
	done chan prepResult
}

// prepResult is what a preparer did.
type prepResult struct {
	made int64 // dispatches numbered (all of them are in the chunk, unless err)
	// over: the burst cannot go on (the session left this connection or
	// ended, or the shard gets no messages); left: the session left this
	// connection, alive.
	over, left bool
	err        error // the compressor failed: the connection is unusable
}

// startPrepare prepares up to want dispatches of sess into ch in a new goroutine.
func (c *conn) startPrepare(sess *session, want int64, ch *preparedChunk) *preparer {
	ch.data, ch.ends = ch.data[:0], ch.ends[:0]
	p := &preparer{done: make(chan prepResult, 1)}
	go func() { p.done <- c.prepare(sess, want, ch, &p.stop) }()
	return p
}

// prepare numbers dispatches of sess emitChunk at a time under the session
// lock, exactly as the direct path does, and appends their frames to ch until
// want are made, the chunk is full, stop is set or the session is gone.
func (c *conn) prepare(sess *session, want int64, ch *preparedChunk, stop *atomic.Bool) prepResult {
	s := c.srv
	var batch [emitChunk]entry
	var res prepResult
	var scratch []byte
	limit := s.cfg.burstChunk
	for res.made < want && len(ch.ends) < limit && len(ch.data) < burstChunkBytes && !stop.Load() {
		k := int(min(want-res.made, emitChunk, int64(limit-len(ch.ends))))
		idBase := uint64(time.Now().UnixMilli()-discordEpochMs) << 22
		got := 0
		sess.mu.Lock()
		if sess.conn != c || sess.ended {
			sess.mu.Unlock()
			res.over, res.left = true, !sess.ended
			return res
		}
		for got < k {
			b, guild, ok := sess.nextMessageLocked(s.cfg.MessageVariety)
			if !ok {
				break
			}
			batch[got] = sess.appendLocked(b, idBase|s.msgSeq.Add(1)&0x3fffff, guild, s.cfg.ReplayBuffer)
			got++
		}
		sess.mu.Unlock()
		if got == 0 {
			res.over = true // this shard gets no messages
			return res
		}
		s.dispatches.Add(uint64(got))
		res.made += int64(got)
		for _, e := range batch[:got] {
			if c.compress == compressNone {
				ch.data = appendDispatch(ch.data, e)
			} else {
				scratch = appendDispatch(scratch[:0], e)
				frame, err := c.compressPayload(scratch)
				if err != nil {
					res.err = err
					return res
				}
				ch.data = append(ch.data, frame...)
			}
			ch.ends = append(ch.ends, len(ch.data))
		}
	}
	return res
}

// awaitPrepared waits for p. Anything that needs the writer meanwhile cuts
// the chunk short: a command (taken from the inbox and returned, to be run
// once the chunk is written, so e.g. an ACK is compressed and sent after the
// dispatches compressed before it), or the connection or server ending
// (quit). Before blocking it writes out what the writer has gathered, so the
// client is not kept waiting for frames already prepared.
func (c *conn) awaitPrepared(p *preparer) (res prepResult, cmd *command, quit bool) {
	if c.raw.flush() != nil {
		quit = true
		p.stop.Store(true)
	}
	inbox, readerDone, closing := c.inbox, c.readerDone, c.srv.closing
	for {
		select {
		case res = <-p.done:
			return res, cmd, quit
		case got := <-inbox:
			cmd, inbox = &got, nil
			p.stop.Store(true)
		case <-readerDone:
			quit, readerDone = true, nil
			p.stop.Store(true)
		case <-closing:
			quit, closing = true, nil
			p.stop.Store(true)
		}
	}
}

// emitBurst sends n burst dispatches of sess through prepared chunks. stop
// reports that the burst could not go on (session gone, close frame sent, no
// messages for this shard); ok false that the connection is broken.
//
// Nothing else numbers dispatches of sess on this connection or touches its
// compression context while a chunk is prepared: rate traffic waits in
// c.pending and commands wait for the chunk to be written.
func (c *conn) emitBurst(sess *session, n int64) (ok, stop bool) {
	var chunks [2]preparedChunk // per burst: a nested burst (see produceReady) has its own
	cur, next := &chunks[0], &chunks[1]
	p := c.startPrepare(sess, n, cur)
	// What is not numbered when the connection goes is the session's:
	// the connection that resumes it sends it (see session.burstLeft).
	defer func() { c.carryBurst(sess, n) }()
	for {
		res, cmd, quit := c.awaitPrepared(p)
		n -= res.made
		if res.over && !res.left {
			n = 0 // the session ended, or the shard gets no messages
		}
		if quit || res.err != nil {
			return false, true
		}
		more := !res.over && n > 0
		// Prepare the next chunk while this one is written, unless a command
		// must run on the context first.
		var nextP *preparer
		if more && cmd == nil {
			nextP = c.startPrepare(sess, n, next)
		}
		if !c.writeChunk(cur) {
			if nextP != nil {
				nextP.stop.Store(true)
				n -= (<-nextP.done).made
			}
			return false, true
		}
		if nextP == nil {
			if cmd != nil && !c.exec(*cmd) {
				return false, true
			}
			if !c.drainInbox() {
				return false, true
			}
			if c.closeSent || !more {
				return true, c.closeSent || res.over
			}
			nextP = c.startPrepare(sess, n, next)
		}
		p = nextP
		cur, next = next, cur
	}
}

// carryBurst leaves n burst dispatches not numbered on this connection to
// sess, unless it ended: to the connection that resumed it since, if one
// did, else for the next resume.
func (c *conn) carryBurst(sess *session, n int64) {
	if n <= 0 {
		return
	}
	sess.mu.Lock()
	to := sess.carryTo
	switch {
	case sess.ended:
		to = nil
	case to != nil && to != c:
		// It took burstLeft already: hand the rest to it (its writer
		// sends it once RESUMED is out; if it ends first, it carries it
		// on in turn).
	default:
		to = nil
		sess.burstLeft = min(sess.burstLeft+n, math.MaxInt64/2)
	}
	sess.mu.Unlock()
	if to != nil {
		addSaturating(&to.burst, n)
		to.notify()
	}
}

// writeChunk writes ch's frames back to back through the corked connection.
func (c *conn) writeChunk(ch *preparedChunk) bool {
	mt := websocket.BinaryMessage
	if c.compress == compressNone {
		mt = websocket.TextMessage
	}
	c.beginBatch()
	start := 0
	for _, end := range ch.ends {
		if !c.zombie.Load() {
			if err := c.ws.WriteMessage(mt, ch.data[start:end]); err != nil {
				_ = c.endBatch()
				return false
			}
		}
		start = end
	}
	return c.endBatch() == nil
}
