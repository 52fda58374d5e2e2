package bus

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// The headers of an event message (see the package doc).
const (
	HeaderShard    = "Shardtop-Shard"
	HeaderSeq      = "Shardtop-Seq"
	HeaderSession  = "Shardtop-Session"
	HeaderEvent    = "Shardtop-Event"
	HeaderGuild    = "Shardtop-Guild"
	HeaderReceived = "Shardtop-Received"
	// HeaderLostFrom, HeaderLostTo and HeaderLost are on lost markers only.
	HeaderLostFrom = "Shardtop-Lost-From"
	HeaderLostTo   = "Shardtop-Lost-To"
	HeaderLost     = "Shardtop-Lost"
)

// LostEvent is the event name of the marker announcing lost events.
const LostEvent = "SHARDTOP_LOST"

// msgOverhead is what a message costs besides its body, counted against
// the byte buffer: subject, headers and the client's bookkeeping.
const msgOverhead = 512

// maxCached bounds a shard's caches of subjects and event-name headers:
// Discord has about a hundred event names, the network could send more.
const maxCached = 256

// inFlight is one published event the stream has not answered yet.
type inFlight struct {
	seq  int64
	msg  *nats.Msg // nil once answered
	at   int64     // when it was published (Unix ns), for the ack timeout
	done bool
}

// shardState is what the bus knows of one shard: its session, its events
// in flight in publish order, and whether it is refused until resumed.
type shardState struct {
	key      manager.ShardKey
	shardHdr []string // {"3/16"}, shared by every message of the shard
	idToken  string   // "3", the subject's last token

	mu         sync.Mutex
	session    string
	sessionHdr []string
	subjects   map[string]string   // event name -> subject
	eventHdrs  map[string][]string // event name -> header value
	queue      []inFlight          // in publish order; queue[head:] unanswered or answered out of order
	head       int
	inflight   int
	// refusedAt is the first sequence refused or failed since the shard
	// last resumed (0: none). While it is set the shard takes no event:
	// Discord replays from there when the manager resumes it, which keeps
	// the shard's events in order in the stream.
	refusedAt int64
	// lastAck is the stream sequence of the shard's last acknowledged
	// event; scanFrom where a check for lost events starts looking.
	lastAck, scanFrom uint64
	lost              uint64
}

// shard returns key's state, making it on first use.
func (b *Bus) shard(key manager.ShardKey) *shardState {
	b.shardsMu.RLock()
	st := b.shards[key]
	b.shardsMu.RUnlock()
	if st != nil {
		return st
	}
	b.shardsMu.Lock()
	defer b.shardsMu.Unlock()
	if st = b.shards[key]; st == nil {
		st = &shardState{key: key, shardHdr: []string{key.String()}, idToken: strconv.Itoa(key.ID)}
		b.shards[key] = st
	}
	return st
}

// lookup finds the shard state and sequence an event message belongs to,
// from the headers Take wrote.
func (b *Bus) lookup(m *nats.Msg) (*shardState, int64, bool) {
	key, ok := parseShard(m.Header.Get(HeaderShard))
	if !ok {
		return nil, 0, false
	}
	seq, err := strconv.ParseInt(m.Header.Get(HeaderSeq), 10, 64)
	if err != nil {
		return nil, 0, false
	}
	b.shardsMu.RLock()
	st := b.shards[key]
	b.shardsMu.RUnlock()
	return st, seq, st != nil
}

// parseShard reads "ID/COUNT".
func parseShard(s string) (manager.ShardKey, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			id, err1 := strconv.Atoi(s[:i])
			count, err2 := strconv.Atoi(s[i+1:])
			return manager.ShardKey{ID: id, Count: count}, err1 == nil && err2 == nil
		}
	}
	return manager.ShardKey{}, false
}

// Take publishes one dispatch (manager.EventSink). When the buffer is
// full it waits a little for room (the buffer wait): the shard stops
// reading, which slows Discord down as TCP does. It refuses the event
// (false) while the shard waits to be resumed, while NATS is
// disconnected, and when the buffer stays full: the manager then holds the
// shard and Discord's replay brings the event again.
func (b *Bus) Take(sessionID string, d gateway.Dispatch) bool {
	st := b.shard(manager.ShardKey{ID: d.ShardID, Count: d.ShardCount})
	now := time.Now()
	st.mu.Lock()
	if st.session != sessionID {
		b.newSession(st, sessionID)
	}
	if st.refusedAt != 0 {
		st.mu.Unlock()
		b.refusedEvents.Add(1)
		return false
	}
	st.mu.Unlock()
	size := int64(len(d.Data) + msgOverhead)
	if len(d.Data) > b.maxPayload() {
		// The server would refuse it every time: Discord's replay cannot
		// bring it either. It is lost, and announced as such.
		b.log.Error("an event is larger than the NATS server's max_payload: announcing it lost",
			"shard", st.key.String(), "event", d.Event, "seq", d.Seq, "bytes", len(d.Data), "max_payload", b.maxPayload())
		b.queueLost(lostRange{key: st.key, session: sessionID, from: d.Seq, to: d.Seq})
		return true
	}
	if !b.up.Load() || !b.reserveOrWait(size) {
		st.mu.Lock()
		st.refuse(d.Seq)
		st.mu.Unlock()
		b.refusedEvents.Add(1)
		return false
	}
	st.mu.Lock()
	msg := b.message(st, sessionID, d, now)
	st.queue = append(st.queue, inFlight{seq: d.Seq, msg: msg, at: now.UnixNano()})
	st.inflight++
	st.mu.Unlock()

	// Publish outside the lock: it may write to the socket. The shard's
	// events come from its one goroutine, so they go out in order.
	if _, err := b.js.PublishMsgAsync(msg, b.pubOpts...); err != nil {
		b.release(size)
		b.failed.Add(1)
		st.mu.Lock()
		if i := st.find(d.Seq, msg); i >= 0 {
			st.answer(i)
		}
		first := st.refuse(d.Seq)
		st.mu.Unlock()
		if first {
			b.log.Warn("publishing an event failed: the shard is held and resumed from its last durable event",
				"shard", st.key.String(), "seq", d.Seq, "err", err)
			b.addRefused(st.key)
		}
		return false
	}
	b.published.Add(1)
	return true
}

// message builds the NATS message of d. The body is a copy of Discord's
// "d"; header values that repeat (shard, session, event name) are shared.
func (b *Bus) message(st *shardState, session string, d gateway.Dispatch, now time.Time) *nats.Msg {
	subject, ok := st.subjects[d.Event]
	if !ok {
		subject = b.evPrefix + subjectToken(d.Event) + "." + st.idToken
		if len(st.subjects) < maxCached {
			if st.subjects == nil {
				st.subjects = make(map[string]string)
			}
			st.subjects[d.Event] = subject
		}
	}
	event, ok := st.eventHdrs[d.Event]
	if !ok {
		event = []string{d.Event}
		if len(st.eventHdrs) < maxCached {
			if st.eventHdrs == nil {
				st.eventHdrs = make(map[string][]string)
			}
			st.eventHdrs[d.Event] = event
		}
	}
	// One string holds the per-message header values: fewer allocations.
	var buf [160]byte
	p := strconv.AppendInt(buf[:0], d.Seq, 10)
	nSeq := len(p)
	p = now.UTC().AppendFormat(p, time.RFC3339Nano)
	nRecv := len(p)
	p = append(p, session...)
	p = append(p, ':')
	p = strconv.AppendInt(p, d.Seq, 10)
	s := string(p)
	vals := [3]string{s[:nSeq], s[nSeq:nRecv], s[nRecv:]}
	hdr := nats.Header{
		HeaderShard:           st.shardHdr,
		HeaderSeq:             vals[0:1:1],
		HeaderSession:         st.sessionHdr,
		HeaderEvent:           event,
		HeaderReceived:        vals[1:2:2],
		jetstream.MsgIDHeader: vals[2:3:3],
	}
	if guild, ok := d.GuildID(); ok {
		hdr[HeaderGuild] = []string{guild}
	}
	return &nats.Msg{Subject: subject, Header: hdr, Data: append([]byte(nil), d.Data...)}
}

// newSession starts tracking sessionID on st (st.mu held). Events of the
// previous session still in flight can no longer be replayed (the shard
// identified anew): if they fail they are checked and announced lost.
func (b *Bus) newSession(st *shardState, sessionID string) {
	if st.session != "" {
		for _, f := range st.queue[st.head:] {
			if !f.done {
				b.orphans.Store(f.msg, orphan{key: st.key, session: st.session, seq: f.seq, scanFrom: st.lastAck + 1})
			}
		}
	}
	st.session, st.sessionHdr = sessionID, []string{sessionID}
	st.queue, st.head, st.inflight, st.refusedAt = st.queue[:0], 0, 0, 0
}

// orphan is an event of a session its shard left while it was in flight.
type orphan struct {
	key      manager.ShardKey
	session  string
	seq      int64
	scanFrom uint64
}

// find returns the index of the unanswered event seq sent as m, or -1
// (st.mu held). Answers come in publish order, so it is at the front.
func (st *shardState) find(seq int64, m *nats.Msg) int {
	for i := st.head; i < len(st.queue); i++ {
		if f := &st.queue[i]; f.msg == m {
			return i
		} else if f.seq > seq {
			break
		}
	}
	return -1
}

// answer marks queue[i] answered and drops the answered front (st.mu held).
func (st *shardState) answer(i int) {
	st.queue[i].done, st.queue[i].msg = true, nil
	st.inflight--
	for st.head < len(st.queue) && st.queue[st.head].done {
		st.queue[st.head] = inFlight{}
		st.head++
	}
	switch {
	case st.head == len(st.queue):
		st.queue, st.head = st.queue[:0], 0
	case st.head > 1024 && st.head > len(st.queue)/2:
		n := copy(st.queue, st.queue[st.head:])
		clear(st.queue[n:])
		st.queue, st.head = st.queue[:n], 0
	}
}

// refuse records seq as not durable and the shard as refused; it reports
// whether the shard was taking events until now (st.mu held).
func (st *shardState) refuse(seq int64) bool {
	first := st.refusedAt == 0
	if first || seq < st.refusedAt {
		st.refusedAt = seq
	}
	return first
}

// reserve counts an event of size bytes into the buffer, or reports that
// it is full.
func (b *Bus) reserve(size int64) bool {
	if b.inflight.Add(1) > int64(b.cfg.maxPending) {
		b.inflight.Add(-1)
		return false
	}
	if b.inflightBytes.Add(size) > b.cfg.maxPendingBytes {
		b.inflight.Add(-1)
		b.inflightBytes.Add(-size)
		return false
	}
	return true
}

// reserveOrWait is reserve, waiting up to the buffer wait for room.
func (b *Bus) reserveOrWait(size int64) bool {
	if b.reserve(size) {
		return true
	}
	if b.cfg.bufferWait <= 0 {
		return false
	}
	timer := time.NewTimer(b.cfg.bufferWait)
	defer timer.Stop()
	for {
		b.roomMu.Lock()
		if b.room == nil {
			b.room = make(chan struct{})
		}
		room := b.room
		b.waiting.Store(true)
		b.roomMu.Unlock()
		if b.reserve(size) { // room made before we registered
			return true
		}
		select {
		case <-room:
			if b.reserve(size) {
				return true
			}
		case <-timer.C:
			return b.reserve(size)
		case <-b.closing:
			return false
		}
	}
}

// release takes an answered event out of the buffer and wakes the shards
// waiting for room once it is below seven eighths full: waking them at
// every answer would cost more than it gains.
func (b *Bus) release(size int64) {
	n, nb := b.inflight.Add(-1), b.inflightBytes.Add(-size)
	if b.waiting.Load() && n <= int64(b.cfg.maxPending)/8*7 && nb <= b.cfg.maxPendingBytes/8*7 {
		b.roomMu.Lock()
		if b.room != nil {
			close(b.room)
			b.room = nil
		}
		b.waiting.Store(false)
		b.roomMu.Unlock()
	}
}

// maxPayload is the largest body the server takes.
func (b *Bus) maxPayload() int {
	if n := b.nc.MaxPayload(); n > 0 {
		return int(n) - msgOverhead
	}
	return 1<<20 - msgOverhead
}

// onAck hears the stream acknowledge an event.
func (b *Bus) onAck(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
	b.release(int64(len(m.Data) + msgOverhead))
	b.acked.Add(1)
	if ack.Duplicate {
		b.duplicates.Add(1)
	}
	if _, ok := b.orphans.LoadAndDelete(m); ok {
		return
	}
	st, seq, ok := b.lookup(m)
	if !ok {
		return
	}
	st.mu.Lock()
	if i := st.find(seq, m); i >= 0 {
		st.answer(i)
		st.lastAck = max(st.lastAck, ack.Sequence)
	}
	st.mu.Unlock()
}

// onErr hears that publishing an event failed: the shard is held and
// resumed from its last durable event, so Discord's replay brings it and
// what follows it again, in order.
func (b *Bus) onErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	b.release(int64(len(m.Data) + msgOverhead))
	b.failed.Add(1)
	if o, ok := b.orphans.LoadAndDelete(m); ok {
		o := o.(orphan)
		b.queueLost(lostRange{key: o.key, session: o.session, from: o.seq, to: o.seq, scanFrom: o.scanFrom})
		return
	}
	st, seq, ok := b.lookup(m)
	if !ok {
		return
	}
	st.mu.Lock()
	i := st.find(seq, m)
	first := false
	if i >= 0 {
		st.answer(i)
		first = st.refuse(seq)
	}
	st.mu.Unlock()
	if first {
		b.log.Warn("the stream did not take an event: the shard is held and resumed from its last durable event",
			"shard", st.key.String(), "seq", seq, "err", err)
		b.addRefused(st.key)
	}
}

// addRefused queues key for Refused.
func (b *Bus) addRefused(key manager.ShardKey) {
	b.mu.Lock()
	b.refused = append(b.refused, key)
	b.mu.Unlock()
}

// Pending returns the first sequence of the shard's session that is not
// durable (manager.EventSink).
func (b *Bus) Pending(key manager.ShardKey, sessionID string) (int64, bool) {
	b.shardsMu.RLock()
	st := b.shards[key]
	b.shardsMu.RUnlock()
	if st == nil {
		return 0, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.session != sessionID {
		return 0, false
	}
	first, ok := int64(0), false
	if st.head < len(st.queue) {
		first, ok = st.queue[st.head].seq, true
	}
	if st.refusedAt != 0 && (!ok || st.refusedAt < first) {
		first, ok = st.refusedAt, true
	}
	return first, ok
}

// Refused returns the shards refused since the last call
// (manager.EventSink).
func (b *Bus) Refused() []manager.ShardKey {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.refused
	b.refused = nil
	return r
}

// Ready returns a channel closed once the bus takes events again: NATS
// connected, the stream answering, the buffer at most half full
// (manager.EventSink).
func (b *Bus) Ready() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ready == nil {
		b.ready = make(chan struct{})
	}
	return b.ready
}

// Resumed takes the shard's events again from the resume of sessionID
// (manager.EventSink). What it still had in flight is replayed by Discord.
func (b *Bus) Resumed(key manager.ShardKey, sessionID string) {
	st := b.shard(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.scanFrom = st.lastAck + 1
	st.session, st.sessionHdr = sessionID, []string{sessionID}
	clear(st.queue)
	st.queue, st.head, st.inflight, st.refusedAt = st.queue[:0], 0, 0, 0
}

// Lost is told that events from..to of sessionID will not be replayed
// (manager.EventSink). The bus checks which of them the stream has anyway
// (published before the failure, acknowledged too late), counts the rest
// and announces them with a marker.
func (b *Bus) Lost(key manager.ShardKey, sessionID string, from, to int64) {
	if to < from {
		return
	}
	st := b.shard(key)
	st.mu.Lock()
	scanFrom := st.scanFrom
	st.mu.Unlock()
	b.queueLost(lostRange{key: key, session: sessionID, from: from, to: to, scanFrom: max(scanFrom, 1)})
}

// Flush waits until every event published is answered (manager.EventSink).
func (b *Bus) Flush(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n := b.inflight.Load()
		switch {
		case n <= 0:
			return nil
		case b.closed.Load():
			return errClosed
		case !b.up.Load():
			return fmt.Errorf("bus: disconnected from NATS with %d events not acknowledged", n)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bus: %d events not acknowledged: %w", n, ctx.Err())
		case <-b.js.PublishAsyncComplete():
			<-tick.C // let the last answers be counted
		case <-tick.C:
		}
	}
}
