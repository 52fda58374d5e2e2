package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	size int64 // what it counts against the byte buffer
	at   int64 // when it was published (Unix ns), for the ack timeout
	done bool
}

// staleKey names an event of a generation of the shard before its current
// one: (gen, seq) is in the reply subject of its publish.
type staleKey struct {
	gen uint32
	seq int64
}

// staleEvent is an event published before the shard resumed or changed
// session, still unanswered. Its answer still frees its buffer room; if it
// fails and it belongs to a session the shard left (orphan), Discord cannot
// replay it: it is checked and announced lost.
type staleEvent struct {
	size     int64
	at       int64
	orphan   bool
	session  string
	scanFrom uint64
}

// shardState is what the bus knows of one shard: its session, its events
// in flight in publish order, and whether it is refused until resumed.
type shardState struct {
	key     manager.ShardKey
	slot    uint32 // its index in Bus.slots, in its events' reply subjects
	keyText string // "3/16", the Shardtop-Shard header
	idToken string // "3", the subject's last token
	reply   string // "_INBOX.<nuid>.<slot>.", the reply subjects' prefix

	mu      sync.Mutex
	session string
	// gen counts the shard's resumes and new sessions: an answer to an
	// event of an earlier generation is not one of queue's.
	gen      uint32
	stale    map[staleKey]staleEvent
	subjects map[string]string // event name -> subject
	queue    []inFlight        // in publish order; queue[head:] unanswered or answered out of order
	head     int
	inflight int
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

// maxByID bounds Bus.byID: Discord's shard counts are far below it.
const maxByID = 1 << 16

// shard returns key's state, making it on first use.
func (b *Bus) shard(key manager.ShardKey) *shardState {
	if ids := b.byID.Load(); ids != nil && key.ID >= 0 && key.ID < len(*ids) {
		if st := (*ids)[key.ID]; st != nil && st.key == key {
			return st // the usual case: no lock, no hashing
		}
	}
	b.shardsMu.RLock()
	st := b.shards[key]
	b.shardsMu.RUnlock()
	if st != nil {
		return st
	}
	b.shardsMu.Lock()
	defer b.shardsMu.Unlock()
	if st = b.shards[key]; st == nil {
		slots := *b.slots.Load()
		st = &shardState{key: key, slot: uint32(len(slots)), keyText: key.String(), idToken: strconv.Itoa(key.ID)}
		st.reply = b.replyPrefix + strconv.FormatUint(uint64(st.slot), 10) + "."
		b.shards[key] = st
		next := append(slots[:len(slots):len(slots)], st)
		b.slots.Store(&next)
		if key.ID >= 0 && key.ID < maxByID {
			var ids []*shardState
			if old := b.byID.Load(); old != nil {
				ids = *old
			}
			ids = append(ids[:len(ids):len(ids)], make([]*shardState, max(0, key.ID+1-len(ids)))...)
			ids[key.ID] = st // the latest shard count's, during a re-shard
			b.byID.Store(&ids)
		}
	}
	return st
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
	size := int64(len(d.Data) + msgOverhead)
	st.mu.Lock()
	if st.session != sessionID {
		b.newSession(st, sessionID)
	}
	if st.refusedAt != 0 {
		st.mu.Unlock()
		b.refusedEvents.Add(1)
		return false
	}
	if len(d.Data) > b.maxBody() {
		st.mu.Unlock()
		// The server would refuse it every time: Discord's replay cannot
		// bring it either. It is lost, and announced as such.
		b.log.Error("an event is larger than the NATS server's max_payload: announcing it lost",
			"shard", st.keyText, "event", d.Event, "seq", d.Seq, "bytes", len(d.Data), "max_payload", b.maxBody())
		b.queueLost(lostRange{key: st.key, session: sessionID, from: d.Seq, to: d.Seq})
		return true
	}
	if !b.up.Load() || !b.reserve(size) {
		// Wait for room without the lock: the answers need it.
		st.mu.Unlock()
		ok := b.up.Load() && b.reserveOrWait(size)
		st.mu.Lock()
		if ok && (st.refusedAt != 0 || st.session != sessionID) {
			b.release(size) // refused meanwhile (NATS disconnected): Discord replays it
			ok = false
		}
		if !ok {
			st.refuse(d.Seq)
			st.mu.Unlock()
			b.refusedEvents.Add(1)
			return false
		}
	}
	subject := st.subject(b.evPrefix, d.Event)
	gen := st.gen
	st.queue = append(st.queue, inFlight{seq: d.Seq, size: size, at: now.UnixNano()})
	st.inflight++
	st.mu.Unlock()

	// Publish outside the lock: it may write to the socket. The shard's
	// events come from its one goroutine, so they go out in order.
	sc := b.scratch.Get().(*scratch)
	err := sc.publish(b.nc, st, subject, sessionID, gen, d, now)
	b.scratch.Put(sc)
	if err != nil {
		b.failed.Add(1)
		st.mu.Lock()
		found := false
		if gen == st.gen {
			if i := st.find(d.Seq); i >= 0 {
				st.answer(i)
				found = true
			}
		}
		first := st.refuse(d.Seq)
		st.mu.Unlock()
		if found {
			b.release(size)
		}
		if first {
			b.log.Warn("publishing an event failed: the shard is held and resumed from its last durable event",
				"shard", st.keyText, "seq", d.Seq, "err", err)
			b.addRefused(st.key)
		}
		return false
	}
	b.published.Add(1)
	return true
}

// subject returns the subject of event, cached (st.mu held).
func (st *shardState) subject(evPrefix, event string) string {
	subject, ok := st.subjects[event]
	if !ok {
		subject = evPrefix + subjectToken(event) + "." + st.idToken
		if len(st.subjects) < maxCached {
			if st.subjects == nil {
				st.subjects = make(map[string]string)
			}
			st.subjects[event] = subject
		}
	}
	return subject
}

// scratch is a reusable message: NATS copies a message into its write
// buffer before PublishMsg returns, so the message, its header map and the
// body need not outlive the call. Only the per-message header values are
// made anew, in one string.
type scratch struct {
	msg nats.Msg
	// withGuild and noGuild hold every header, their values in vals:
	// a message only sets vals, never the maps.
	withGuild, noGuild nats.Header
	vals               [numHeaders][1]string
	buf                []byte
	// sec and secText cache the formatted second of the last stamp.
	sec     int64
	secText [len("2006-01-02T15:04:05")]byte
}

// The header values of an event, by their index in scratch.vals.
const (
	valShard = iota
	valSeq
	valSession
	valEvent
	valReceived
	valMsgID
	valGuild
	numHeaders
)

func newScratch() any {
	sc := &scratch{buf: make([]byte, 0, 256), sec: -1}
	names := [numHeaders]string{HeaderShard, HeaderSeq, HeaderSession, HeaderEvent, HeaderReceived, jetstream.MsgIDHeader, HeaderGuild}
	sc.withGuild, sc.noGuild = make(nats.Header, numHeaders), make(nats.Header, numHeaders)
	for i, name := range names {
		sc.withGuild[name] = sc.vals[i][:]
		if i != valGuild {
			sc.noGuild[name] = sc.vals[i][:]
		}
	}
	return sc
}

// publish sends d as the message of gen's event, with its reply subject
// naming the shard, gen and seq for the acknowledgement.
func (sc *scratch) publish(nc *nats.Conn, st *shardState, subject, session string, gen uint32, d gateway.Dispatch, now time.Time) error {
	p := append(sc.buf[:0], st.reply...)
	p = strconv.AppendUint(p, uint64(gen), 10)
	p = append(p, '.')
	p = strconv.AppendInt(p, d.Seq, 10)
	nReply := len(p)
	p = strconv.AppendInt(p, d.Seq, 10)
	nSeq := len(p)
	p = sc.appendStamp(p, now)
	nRecv := len(p)
	p = append(p, session...)
	p = append(p, ':')
	p = strconv.AppendInt(p, d.Seq, 10)
	nID := len(p)
	p, hasGuild := d.AppendGuildID(p)
	sc.buf = p
	s := string(p) // the one allocation
	v := &sc.vals
	v[valShard][0], v[valSession][0], v[valEvent][0] = st.keyText, session, d.Event
	v[valSeq][0], v[valReceived][0], v[valMsgID][0], v[valGuild][0] = s[nReply:nSeq], s[nSeq:nRecv], s[nRecv:nID], s[nID:]
	h := sc.noGuild
	if hasGuild {
		h = sc.withGuild
	}
	sc.msg = nats.Msg{Subject: subject, Reply: s[:nReply], Header: h, Data: d.Data}
	err := nc.PublishMsg(&sc.msg)
	sc.msg.Data = nil // d.Data is the caller's
	return err
}

// appendStamp appends now in UTC as RFC 3339 with nine fraction digits,
// formatting the date and time only when the second changes.
func (sc *scratch) appendStamp(p []byte, now time.Time) []byte {
	now = now.UTC()
	if sec := now.Unix(); sec != sc.sec {
		sc.sec = sec
		now.Truncate(time.Second).AppendFormat(sc.secText[:0], "2006-01-02T15:04:05")
	}
	p = append(p, sc.secText[:]...)
	p = append(p, '.')
	ns := now.Nanosecond()
	var frac [9]byte
	for i := 8; i >= 0; i-- {
		frac[i] = byte('0' + ns%10)
		ns /= 10
	}
	p = append(p, frac[:]...)
	return append(p, 'Z')
}

// newSession starts tracking sessionID on st (st.mu held). Events of the
// previous session still in flight can no longer be replayed (the shard
// identified anew): if they fail they are checked and announced lost.
func (b *Bus) newSession(st *shardState, sessionID string) {
	st.retire(st.session != "", st.lastAck+1)
	st.session = sessionID
}

// retire moves the events in flight to stale and starts a new generation
// (st.mu held): orphan says their session is over.
func (st *shardState) retire(orphan bool, scanFrom uint64) {
	for _, f := range st.queue[st.head:] {
		if f.done {
			continue
		}
		if st.stale == nil {
			st.stale = make(map[staleKey]staleEvent)
		}
		st.stale[staleKey{st.gen, f.seq}] = staleEvent{size: f.size, at: f.at, orphan: orphan, session: st.session, scanFrom: scanFrom}
	}
	clear(st.queue)
	st.queue, st.head, st.inflight, st.refusedAt = st.queue[:0], 0, 0, 0
	st.gen++
}

// find returns the index of the unanswered event seq, or -1 (st.mu held).
// Answers come in publish order, so it is at the front.
func (st *shardState) find(seq int64) int {
	for i := st.head; i < len(st.queue); i++ {
		if f := &st.queue[i]; f.seq == seq && !f.done {
			return i
		} else if f.seq > seq {
			break
		}
	}
	return -1
}

// answer marks queue[i] answered and drops the answered front (st.mu held).
func (st *shardState) answer(i int) {
	st.queue[i].done = true
	st.inflight--
	st.compact()
}

// compact drops the answered front of the queue (st.mu held).
func (st *shardState) compact() {
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
func (b *Bus) release(size int64) { b.releaseN(1, size) }

// releaseN takes n answered events of size bytes in all out of the buffer.
func (b *Bus) releaseN(count, size int64) {
	n, nb := b.inflight.Add(-count), b.inflightBytes.Add(-size)
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

// maxBody is the largest body the server takes, as last read (see
// readMaxPayload).
func (b *Bus) maxBody() int { return int(b.maxPayload.Load()) }

// readMaxPayload reads the largest body the server takes from the
// connection (it may change with a reconnect).
func (b *Bus) readMaxPayload() {
	n := b.nc.MaxPayload()
	if n <= 0 {
		n = 1 << 20
	}
	b.maxPayload.Store(n - msgOverhead)
}

// onReply hears the stream answer an event's publish: the reply subject
// names the shard, the generation and the sequence (see scratch.publish).
// NATS calls it from one goroutine.
func (b *Bus) onReply(m *nats.Msg) {
	slot, gen, seq, ok := parseReply(m.Subject[min(len(b.replyPrefix), len(m.Subject)):])
	slots := *b.slots.Load()
	if !ok || int(slot) >= len(slots) {
		b.log.Warn("an answer to no event of ours", "subject", m.Subject)
		return
	}
	st := slots[slot]
	streamSeq, dup, err := parsePubAck(m)
	var size int64
	found, first := false, false
	var lost *lostRange
	st.mu.Lock()
	if gen == st.gen {
		if i := st.find(seq); i >= 0 {
			size, found = st.queue[i].size, true
			st.answer(i)
			if err == nil {
				st.lastAck = max(st.lastAck, streamSeq)
			} else {
				first = st.refuse(seq)
			}
		}
	} else if e, ok := st.stale[staleKey{gen, seq}]; ok {
		delete(st.stale, staleKey{gen, seq})
		size, found = e.size, true
		if err == nil {
			st.lastAck = max(st.lastAck, streamSeq)
		} else if e.orphan {
			lost = &lostRange{key: st.key, session: e.session, from: seq, to: seq, scanFrom: e.scanFrom}
		}
	}
	st.mu.Unlock()
	if !found {
		return // answered already: failed when NATS disconnected, or timed out
	}
	b.release(size)
	if err != nil {
		b.failed.Add(1)
	} else {
		b.acked.Add(1)
		if dup {
			b.duplicates.Add(1)
		}
	}
	if lost != nil {
		b.queueLost(*lost)
	}
	if first {
		b.log.Warn("the stream did not take an event: the shard is held and resumed from its last durable event",
			"shard", st.key.String(), "seq", seq, "err", err)
		b.addRefused(st.key)
	}
}

// failInFlight fails every event in flight, as if each had got an error:
// NATS disconnected, so their answers may never come. Those the stream
// stored anyway are dropped as duplicates when Discord replays them.
func (b *Bus) failInFlight(why string) {
	b.failWhere(func(int64) bool { return true }, why)
}

// failWhere fails the events in flight published at a time for which
// fail is true, and holds their shards.
func (b *Bus) failWhere(fail func(at int64) bool, why string) {
	for _, st := range *b.slots.Load() {
		var size, n int64
		var lost []lostRange
		st.mu.Lock()
		first := false
		for i := st.head; i < len(st.queue); i++ {
			if f := &st.queue[i]; !f.done && fail(f.at) {
				size, n = size+f.size, n+1
				first = st.refuse(f.seq) || first
				f.done = true
				st.inflight--
			}
		}
		st.compact()
		for k, e := range st.stale {
			if fail(e.at) {
				size, n = size+e.size, n+1
				delete(st.stale, k)
				if e.orphan {
					lost = append(lost, lostRange{key: st.key, session: e.session, from: k.seq, to: k.seq, scanFrom: e.scanFrom})
				}
			}
		}
		st.mu.Unlock()
		if n == 0 {
			continue
		}
		b.releaseN(n, size)
		b.failed.Add(uint64(n))
		for _, r := range lost {
			b.queueLost(r)
		}
		if first {
			b.log.Warn(why+": the shard is held and resumed from its last durable event", "shard", st.key.String(), "events", n)
			b.addRefused(st.key)
		}
	}
}

// parseReply reads "SLOT.GEN.SEQ", the tail of a reply subject.
func parseReply(s string) (slot, gen uint32, seq int64, ok bool) {
	a := strings.IndexByte(s, '.')
	if a < 0 {
		return 0, 0, 0, false
	}
	c := strings.IndexByte(s[a+1:], '.')
	if c < 0 {
		return 0, 0, 0, false
	}
	c += a + 1
	sl, err1 := strconv.ParseUint(s[:a], 10, 32)
	g, err2 := strconv.ParseUint(s[a+1:c], 10, 32)
	q, err3 := strconv.ParseInt(s[c+1:], 10, 64)
	return uint32(sl), uint32(g), q, err1 == nil && err2 == nil && err3 == nil
}

// duplicate reports "duplicate":true in an answer (the server writes it
// with a space after the colon).
func duplicate(d []byte) bool {
	i := bytes.Index(d, []byte(`"duplicate":`))
	if i < 0 {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(d[i+len(`"duplicate":`):], " "), []byte("true"))
}

// pubAck is JetStream's answer to a publish, for the slow path.
type pubAck struct {
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
	Error     *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// errNoResponders is the answer when no stream takes the subject.
var errNoResponders = errors.New("no stream took the event (no responders)")

// parsePubAck reads the stream's answer: the stream sequence and whether
// the event was a duplicate, or the error. The usual answer,
// {"stream":"NAME","seq":N} with maybe ,"duplicate":true, is read without
// decoding it (stream names cannot hold a quote); anything else is decoded.
func parsePubAck(m *nats.Msg) (seq uint64, dup bool, err error) {
	d := m.Data
	if len(d) == 0 {
		if st := m.Header.Get("Status"); st == "503" {
			return 0, false, errNoResponders
		} else if st != "" {
			return 0, false, fmt.Errorf("status %s %s", st, m.Header.Get("Description"))
		}
		return 0, false, errors.New("an empty answer")
	}
	if !bytes.Contains(d, []byte(`"error"`)) {
		if i := bytes.Index(d, []byte(`"seq":`)); i >= 0 {
			rest := d[i+len(`"seq":`):]
			j := 0
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			if j > 0 && j < len(rest) && (rest[j] == ',' || rest[j] == '}') {
				n, perr := strconv.ParseUint(string(rest[:j]), 10, 64)
				if perr == nil {
					return n, duplicate(d), nil
				}
			}
		}
	}
	var a pubAck
	if jerr := json.Unmarshal(d, &a); jerr != nil {
		return 0, false, fmt.Errorf("an answer that is not JSON: %w", jerr)
	}
	if a.Error != nil {
		return 0, false, fmt.Errorf("the stream refused it: %s (code %d, err_code %d)", a.Error.Description, a.Error.Code, a.Error.ErrCode)
	}
	return a.Seq, a.Duplicate, nil
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
	st.retire(st.session != sessionID && st.session != "", st.scanFrom)
	st.session = sessionID
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
		case <-tick.C:
		}
	}
}
