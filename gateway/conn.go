package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Gateway opcodes.
const (
	opDispatch       = 0
	opHeartbeat      = 1
	opIdentify       = 2
	opPresenceUpdate = 3
	opResume         = 6
	opReconnect      = 7
	opInvalidSession = 9
	opHello          = 10
	opHeartbeatACK   = 11
)

// gatewayURL builds {url}?v=10&encoding=json[&compress=...], keeping the
// URL's path (the resume URL may have one).
func gatewayURL(raw string, c Compression) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws", "wss":
	default:
		return "", fmt.Errorf("scheme %q is not ws or wss", u.Scheme)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	compress := c != CompressionNone && c != ""
	if u.RawQuery == "" {
		// The usual URL, once per dial: spelled out as Encode would (keys
		// sorted), without its map.
		u.RawQuery = "encoding=json&v=10"
		if compress {
			u.RawQuery = "compress=" + url.QueryEscape(string(c)) + "&" + u.RawQuery
		}
		return u.String(), nil
	}
	q := u.Query()
	q.Set("v", "10")
	q.Set("encoding", "json")
	q.Del("compress")
	if compress {
		q.Set("compress", string(c))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// pooled message buffers: an idle shard holds none.
type msgBuf struct{ b []byte }

var bufPool = sync.Pool{New: func() any { return &msgBuf{b: make([]byte, 0, 8<<10)} }}

func getBuf() *msgBuf { return bufPool.Get().(*msgBuf) }

func putBuf(m *msgBuf) {
	if cap(m.b) > 1<<20 {
		return
	}
	m.b = m.b[:0]
	bufPool.Put(m)
}

// conn is one websocket connection of a shard. The shard's run goroutine
// reads (readLoop); that is the only goroutine a connection keeps. Writes
// happen on whoever has something to write, one at a time under wmu
// (gorilla allows one writer): heartbeats on a timer's callback, Resume on
// the reader at Hello, Send on its caller, and the Identify on an acquire
// goroutine that exists only while waiting for the identify gate and writes
// the Identify itself the moment the gate lets it go, so no goroutine hop
// lies between the grant and the socket. An idle shard thus costs one
// parked goroutine and one pending timer.
type conn struct {
	s        *Shard
	ws       *websocket.Conn
	log      *slog.Logger
	shardCtx context.Context // the shard's: ends with Close/End
	infl     inflater
	start    time.Time
	resume   bool
	sessID   string
	resumeS  int64 // seq to resume from

	ticket   uint64 // the identify ticket this connection holds (let through Approach), 0 if it resumes
	released bool   // the ticket was given back (reader goroutine only)

	endOnce  sync.Once
	ended    atomic.Bool // shutdown has begun: nothing more is written
	endMu    sync.Mutex
	localEnd *connEnd // set by shutdown when the shard itself ended the connection
	// cancelAcquire ends the acquire goroutine's wait for the gate; guarded by endMu.
	cancelAcquire context.CancelFunc
	hello         bool

	// bg counts the connection's work off the reader: the acquire
	// goroutine, heartbeat timer callbacks, requested beats and the
	// callback that shuts the connection down when the shard stops. run
	// waits for it, so none of it outlives the connection.
	bg          sync.WaitGroup
	stopOnClose func() bool // unregisters that callback (context.AfterFunc)

	// identifying is set just before the Identify is written; identified is
	// closed once the acquire goroutine is done (the Identifying transition
	// made). READY waits for it so that Ready never precedes Identifying.
	identifying atomic.Bool
	identified  chan struct{}

	ready       atomic.Bool
	awaitingAck atomic.Bool
	hbSentAt    atomic.Int64 // unix nanos
	beatAsked   atomic.Bool  // a beat Discord asked for (op 1) is on its way

	hbMu      sync.Mutex    // serializes beats; guards the fields below
	hb        *time.Timer   // the next beat (time.AfterFunc), nil before Hello
	hbDue     time.Time     // when the next beat goes out
	hbStopped bool          // the connection is being torn down: no more beats
	interval  time.Duration // heartbeat_interval from Hello
	hbBuf     [32]byte      // the heartbeat payload: {"op":1,"d":SEQ}

	wmu     sync.Mutex // one data writer at a time (gorilla allows one); guards limit and reserve
	limit   sendWindow // send times of every data write
	reserve int        // payloads per window kept for the shard's own (see reserveFor)
}

// connect dials and runs one connection until it ends.
func (s *Shard) connect(ctx context.Context, rawURL, sessID string, resume bool, ticket uint64) connEnd {
	full, err := gatewayURL(rawURL, s.cfg.compression)
	if err == nil {
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, s.cfg.handshakeTimeout)
		var ws *websocket.Conn
		var resp interface{ Close() error }
		ws, r, derr := s.dialerFor(full).DialContext(dctx, full, nil)
		cancel()
		if r != nil && r.Body != nil {
			resp = r.Body
			_ = resp.Close()
		}
		if derr == nil {
			if h, ok := ws.NetConn().(interface{ endHandshake() }); ok {
				h.endHandshake()
			}
			c := s.newConn(ctx, ws, start, sessID, resume, ticket)
			return c.run()
		}
		err = derr
		if r != nil {
			err = fmt.Errorf("%w (HTTP %d)", derr, r.StatusCode)
		}
	}
	if ticket != 0 {
		s.gate.Release(ticket, false)
	}
	if ctx.Err() != nil {
		return connEnd{stopped: true}
	}
	err = fmt.Errorf("gateway: shard %d: dial: %w", s.id, err)
	action := ActionResume
	if !resume {
		action = ActionIdentify
	}
	return connEnd{action: action, reason: "dial failed", err: err, dialFailed: true}
}

func (s *Shard) newConn(ctx context.Context, ws *websocket.Conn, start time.Time, sessID string, resume bool, ticket uint64) *conn {
	return &conn{
		s: s, ws: ws, shardCtx: ctx, start: start,
		log:    s.log,
		resume: resume, sessID: sessID, resumeS: s.seq.Load(), ticket: ticket,
		limit:   makeSendWindow(s.cfg.sendLimit, s.cfg.sendWindow),
		reserve: reserveFor(s.cfg.sendLimit, s.cfg.sendWindow, 0),
	}
}

// run reads until the connection ends, then tears it down: no goroutine of
// the connection outlives it, and a gate turn never leaks.
func (c *conn) run() connEnd {
	s := c.s
	var end connEnd
	infl, err := newInflater(s.cfg.compression, s.cfg.readLimit, s.cfg.zstdMaxWindow)
	if err != nil {
		end = connEnd{action: ActionResume, reason: "decoder setup failed", err: err}
		c.shutdown(end)
	} else {
		c.infl = infl
		c.ws.SetReadLimit(int64(s.cfg.readLimit))
		_ = c.ws.SetReadDeadline(c.start.Add(s.cfg.handshakeTimeout))
		// Close/End: the reader is parked in a read, so a callback on the
		// shard's context closes the socket under it.
		c.bg.Add(1)
		c.stopOnClose = context.AfterFunc(c.shardCtx, func() {
			defer c.bg.Done()
			c.shutdown(connEnd{stopped: true, reason: "closed"})
		})
		end = c.readLoop()
		c.shutdown(end)
		if c.stopOnClose() {
			c.bg.Done() // it will never run
		}
	}
	c.stopHeartbeats()
	c.bg.Wait()
	if c.ticket != 0 && !c.released {
		s.gate.Release(c.ticket, false)
	}
	if c.infl != nil {
		c.infl.release()
	}
	if !end.action.Fatal() && !end.stopped && end.action == ActionResume && !c.resume && !c.ready.Load() {
		// Never got a session on this connection: there is nothing to resume.
		if _, _, ok := s.hasSession(); !ok {
			end.action = ActionIdentify
		}
	}
	return end
}

// shutdown ends the connection once: records why, sends a close frame and
// closes the socket (gorilla allows WriteControl and Close concurrently).
func (c *conn) shutdown(end connEnd) {
	c.endOnce.Do(func() {
		c.endMu.Lock()
		e := end
		c.localEnd = &e
		if c.cancelAcquire != nil {
			c.cancelAcquire()
		}
		c.endMu.Unlock()
		c.ended.Store(true)
		c.s.live.CompareAndSwap(c, nil)
		code := end.code
		if end.remote || code == 0 {
			code = resumableCloseCode
		}
		if end.stopped {
			code = c.s.commitCloseCode()
		}
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(closeWriteTimeout))
		_ = c.ws.Close()
	})
}

// endFromRead turns a read error into how the connection ended.
func (c *conn) endFromRead(err error) connEnd {
	c.endMu.Lock()
	local := c.localEnd
	c.endMu.Unlock()
	if local != nil {
		return *local
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		name, action := CloseCodeInfo(ce.Code)
		end := connEnd{action: action, code: ce.Code, remote: true, reason: fmt.Sprintf("close %d %s: %s", ce.Code, name, action)}
		if action.Fatal() {
			end.err = &CloseError{Code: ce.Code, Reason: ce.Text}
		}
		if action == ActionIdentify {
			end.reason = fmt.Sprintf("close %d %s: identifying anew", ce.Code, name)
		} else if action == ActionResume {
			end.reason = fmt.Sprintf("close %d %s: resuming", ce.Code, name)
		}
		return end
	}
	return connEnd{action: ActionResume, reason: "connection lost: resuming", err: fmt.Errorf("gateway: shard %d: read: %w", c.s.id, err)}
}

func (c *conn) readLoop() connEnd {
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return c.endFromRead(err)
		}
		in := getBuf()
		in.b, err = readMessage(r, in.b)
		if err != nil {
			putBuf(in)
			return c.endFromRead(err)
		}
		if c.infl == nil {
			end := c.handle(in.b)
			putBuf(in)
			if end != nil {
				return *end
			}
			continue
		}
		out := getBuf()
		var complete bool
		out.b, complete, err = c.infl.decode(in.b, out.b)
		putBuf(in)
		if err != nil {
			putBuf(out)
			return connEnd{action: ActionResume, reason: "bad frame: resuming", err: err}
		}
		var end *connEnd
		if complete {
			end = c.handle(out.b)
		}
		putBuf(out)
		if end != nil {
			return *end
		}
	}
}

func readMessage(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// handle processes one payload; a non-nil result ends the connection.
func (c *conn) handle(p []byte) *connEnd {
	var e envelope
	if err := scanEnvelope(p, &e); err != nil {
		return &connEnd{action: ActionResume, reason: "bad payload: resuming", err: err}
	}
	switch e.op {
	case opDispatch:
		return c.dispatch(&e)
	case opHeartbeat:
		if c.beatAsked.CompareAndSwap(false, true) {
			// Off the reader: a write may wait for the socket.
			c.bg.Go(c.askedBeat)
		}
	case opHeartbeatACK:
		if c.awaitingAck.CompareAndSwap(true, false) {
			lat := time.Now().UnixNano() - c.hbSentAt.Load()
			c.s.latency.Store(lat)
			if old := c.s.smoothed.Load(); old == 0 {
				c.s.smoothed.Store(lat)
			} else {
				c.s.smoothed.Store(int64(float64(old)*0.8 + float64(lat)*0.2))
			}
		}
	case opReconnect:
		return &connEnd{action: ActionResume, reason: "op 7 reconnect: resuming"}
	case opInvalidSession:
		if len(e.d) > 0 && e.d[0] == 't' {
			return &connEnd{action: ActionResume, reason: "op 9 (resumable): resuming"}
		}
		cfg := &c.s.cfg
		wait := cfg.invalidSessionMin + time.Duration(cfg.backoffJitter()*float64(cfg.invalidSessionMax-cfg.invalidSessionMin))
		return &connEnd{action: ActionIdentify, reason: "op 9 (not resumable): identifying anew", waitBefore: wait}
	case opHello:
		return c.onHello(&e)
	}
	return nil
}

func (c *conn) onHello(e *envelope) *connEnd {
	if c.hello {
		return nil
	}
	raw, ok, err := objectField(e.d, "heartbeat_interval")
	var ms float64
	if err == nil && ok {
		ms, err = strconv.ParseFloat(string(raw), 64)
	}
	if err != nil || !ok || !(ms >= float64(minHeartbeatInterval/time.Millisecond)) || ms > float64(maxHeartbeatInterval/time.Millisecond) {
		// Bounds: see minHeartbeatInterval. !(>=) also catches NaN.
		return &connEnd{action: ActionResume, reason: "bad hello: reconnecting", err: &DecodeError{Stage: "hello", Offset: -1, Reason: "no valid heartbeat_interval (1 ms..10 min)", Err: err}}
	}
	c.hello = true
	_ = c.ws.SetReadDeadline(time.Time{})
	c.s.recordHandshake(time.Since(c.start))
	interval := time.Duration(ms * float64(time.Millisecond))
	c.wmu.Lock()
	// Beats go out up to a slot early: count them at their closest spacing.
	c.reserve = reserveFor(c.s.cfg.sendLimit, c.s.cfg.sendWindow, interval-interval/heartbeatSlots)
	c.wmu.Unlock()
	c.startHeartbeats(interval)
	if c.resume {
		p, err := c.s.resumePayload(c.sessID, c.resumeS)
		if err != nil {
			return &connEnd{action: ActionStop, reason: "cannot build resume", err: err}
		}
		c.s.transition(StateResuming, fmt.Sprintf("hello: resuming at seq %d", c.resumeS), 0, nil)
		c.write(p) // on failure the connection is shut down: the next read ends it
		return nil
	}
	// Built now, while the gate is still closed: nothing but the write
	// lies between the grant and the socket.
	p, err := c.s.identifyPayload()
	if err != nil {
		return &connEnd{action: ActionStop, reason: "cannot build identify", err: err}
	}
	c.identified = make(chan struct{})
	c.bg.Go(func() { c.acquireAndIdentify(p) })
	return nil
}

// acquireAndIdentify waits for the gate's go while the reader keeps reading
// (ACKs, op 7), then writes the Identify p at once on this goroutine: the
// identify window is judged on arrival, so the delay from grant to socket
// must be short and steady.
func (c *conn) acquireAndIdentify(p []byte) {
	defer close(c.identified)
	s := c.s
	ctx, cancel := context.WithCancel(c.shardCtx)
	defer cancel()
	c.endMu.Lock()
	if c.localEnd != nil {
		c.endMu.Unlock()
		return // the connection ended already; run releases the turn
	}
	c.cancelAcquire = cancel
	c.endMu.Unlock()
	if err := s.gate.Acquire(ctx, c.ticket); err != nil {
		if ctx.Err() == nil {
			c.shutdown(connEnd{action: ActionIdentify, reason: "identify gate refused: " + err.Error(), err: err})
		}
		return
	}
	if c.ended.Load() {
		return // the connection ended meanwhile; run releases the turn
	}
	c.identifying.Store(true)
	s.identifies.Add(1)
	if !c.write(p) {
		return
	}
	// After the write: the state handler's work is not on the grant's path.
	s.transition(StateIdentifying, "identify slot granted", 0, nil)
}

func (c *conn) dispatch(e *envelope) *connEnd {
	s := c.s
	name, idx := eventName(e.t)
	if e.hasSeq {
		last := s.seq.Load()
		switch {
		case name == "READY":
			s.seq.Store(e.seq)
		case e.seq > last:
			if last != 0 && e.seq > last+1 {
				s.gaps.Add(1)
			}
			s.seq.Store(e.seq)
		}
	}
	switch name {
	case "READY":
		if end := c.onReady(e.d); end != nil {
			return end
		}
	case "RESUMED":
		s.resumes.Add(1)
		c.becomeLive()
		s.transition(StateReady, "resumed", 0, nil)
	case "GUILD_CREATE", "GUILD_DELETE":
		c.trackGuild(name == "GUILD_CREATE", e.d)
	}
	s.events.Add(1)
	s.byName[idx].Add(1)
	if h := s.cfg.onDispatch; h != nil {
		h(Dispatch{ShardID: s.id, ShardCount: s.count, Event: name, Seq: e.seq, Data: e.d})
	}
	return nil
}

func (c *conn) onReady(d []byte) *connEnd {
	s := c.s
	if c.identifying.Load() {
		// The Identify is out; its goroutine is at most making the
		// Identifying transition, which must come first.
		<-c.identified
	}
	var sessID, resumeURL string
	var guilds []uint64
	var bad error
	err := eachField(d, func(k, v []byte) bool {
		switch string(k) {
		case "session_id":
			sessID, _ = unquote(v)
		case "resume_gateway_url":
			resumeURL, _ = unquote(v)
		case "guilds":
			bad = eachElement(v, func(g []byte) {
				if raw, ok, _ := objectField(g, "id"); ok {
					if id, ok := parseSnowflake(raw); ok {
						guilds = append(guilds, id)
					}
				}
			})
		}
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil || sessID == "" {
		return &connEnd{action: ActionIdentify, reason: "bad READY: identifying anew", err: &DecodeError{Stage: "ready", Offset: -1, Reason: "no session_id", Err: err}}
	}
	s.setSession(sessID, resumeURL)
	s.guilds = s.guilds[:0]
	for _, g := range guilds {
		s.guilds = insertSorted(s.guilds, g)
	}
	s.unseen = 0
	s.guildCount.Store(int64(len(s.guilds)))
	if c.ticket != 0 && !c.released {
		c.released = true
		s.gate.Release(c.ticket, true)
	}
	c.becomeLive()
	s.transition(StateReady, "READY", 0, nil)
	return nil
}

// trackGuild counts a GUILD_CREATE or GUILD_DELETE. IDs not in s.guilds
// while s.unseen > 0 (a resumed session, see WithSession) are matched
// against the unseen guilds: a GUILD_CREATE is one of them coming back
// unless joined_at says it was joined after the shard was created.
func (c *conn) trackGuild(create bool, d []byte) {
	s := c.s
	var id uint64
	var have, unavailable bool
	var joinedAt []byte
	_ = eachField(d, func(k, v []byte) bool {
		switch string(k) {
		case "id":
			id, have = parseSnowflake(v)
		case "unavailable":
			unavailable = len(v) > 0 && v[0] == 't'
		case "joined_at":
			joinedAt = v
		}
		return true
	})
	if !have {
		return
	}
	i := searchU64(s.guilds, id)
	known := i < len(s.guilds) && s.guilds[i] == id
	switch {
	case create && !known:
		if s.unseen > 0 && !joinedSince(joinedAt, s.created) {
			s.unseen--
		}
		s.guilds = insertSorted(s.guilds, id)
	case !create && unavailable:
		// An outage: the guild stays counted.
	case !create && known:
		s.guilds = removeSorted(s.guilds, id)
	case !create && s.unseen > 0:
		s.unseen--
	}
	s.guildCount.Store(int64(len(s.guilds) + s.unseen))
}

// joinedSince reports whether the JSON string raw (a GUILD_CREATE's
// joined_at, ISO 8601) is a time after t. Absent or bad values are not.
func joinedSince(raw []byte, t time.Time) bool {
	v, ok := unquote(raw)
	if !ok {
		return false
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	return err == nil && at.After(t)
}

func insertSorted(a []uint64, v uint64) []uint64 {
	i := searchU64(a, v)
	if i < len(a) && a[i] == v {
		return a
	}
	a = append(a, 0)
	copy(a[i+1:], a[i:])
	a[i] = v
	return a
}

func removeSorted(a []uint64, v uint64) []uint64 {
	i := searchU64(a, v)
	if i < len(a) && a[i] == v {
		return append(a[:i], a[i+1:]...)
	}
	return a
}

func searchU64(a []uint64, v uint64) int {
	lo, hi := 0, len(a)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if a[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// becomeLive makes the connection the one Send writes on (before the
// Ready transition, so that a Send woken by it finds it).
func (c *conn) becomeLive() {
	c.ready.Store(true)
	if !c.ended.Load() {
		c.s.live.Store(c)
		if c.ended.Load() { // shutdown ran in between: undo
			c.s.live.CompareAndSwap(c, nil)
		}
	}
}

// heartbeatSlots is how many instants per heartbeat interval beats go out
// on: each beat goes out at the last of them before it is due, early by
// less than interval/heartbeatSlots (1.3 s of Discord's 41.25 s), never
// late. Beats of shards with the same interval thus share the process's
// wake-ups, a few dozen per interval whatever the number of shards,
// instead of one each: a wake-up of an idle process costs far more than
// the beat itself (BenchmarkIdleCPU: ~440 us per beat with a wake-up each,
// ~60 us shared).
const heartbeatSlots = 32

// beatDelay returns how long from now (Unix nanoseconds) a beat due d from
// now waits: until the last slot instant not after it, a multiple of
// interval/heartbeatSlots of Unix time, or not at all if that has passed.
// Only the instants come from the wall clock (the same for every shard, and
// for a test in virtual time): the wait is relative, so a clock step moves
// the instants but never makes a beat late.
func beatDelay(now int64, d, interval time.Duration) time.Duration {
	slot := int64(interval / heartbeatSlots)
	if slot <= 0 {
		return d
	}
	due := now + int64(d)
	at := due - (due%slot+slot)%slot // floor, before 1970 too
	return max(time.Duration(at-now), 0)
}

// startHeartbeats schedules the first beat after Hello: a random share
// of the interval (WithHeartbeatJitter), as Discord asks, so that shards
// started together do not beat together.
func (c *conn) startHeartbeats(interval time.Duration) {
	j := min(max(c.s.cfg.heartbeatJitter(), 0), 1)
	c.hbMu.Lock()
	c.interval = interval
	c.scheduleBeatLocked(time.Duration(j * float64(interval)))
	c.hbMu.Unlock()
}

// scheduleBeatLocked sets the next beat due d from now (see beatDelay).
// Each scheduled fire counts once in bg, undone by the callback or by a
// Stop that prevented it. Caller holds hbMu.
func (c *conn) scheduleBeatLocked(d time.Duration) {
	if c.hbStopped {
		return
	}
	now := time.Now()
	d = beatDelay(now.UnixNano(), d, c.interval)
	c.hbDue = now.Add(d) // monotonic: only compared with time.Now
	c.bg.Add(1)
	if c.hb == nil {
		c.hb = time.AfterFunc(d, c.beatDue)
		return
	}
	if c.hb.Stop() {
		c.bg.Done() // the fire it replaces will not happen
	}
	c.hb.Reset(d)
}

// stopHeartbeats ends the beats at teardown; a callback already started
// finds hbStopped and returns (bg.Wait waits for it).
func (c *conn) stopHeartbeats() {
	c.hbMu.Lock()
	c.hbStopped = true
	if c.hb != nil && c.hb.Stop() {
		c.bg.Done()
	}
	c.hbMu.Unlock()
}

// beatDue is the heartbeat timer's callback: zombie check, then the beat.
func (c *conn) beatDue() {
	defer c.bg.Done()
	c.hbMu.Lock()
	defer c.hbMu.Unlock()
	if c.hbStopped || c.ended.Load() || time.Now().Before(c.hbDue) {
		return // torn down, or rescheduled after this fire was set off
	}
	if c.awaitingAck.Load() {
		c.shutdown(connEnd{action: ActionResume, reason: "zombie: no ACK in " + c.interval.String()})
		return
	}
	if c.beatLocked() {
		c.scheduleBeatLocked(c.interval)
	}
}

// askedBeat answers an op 1 from Discord with a beat at once.
func (c *conn) askedBeat() {
	c.hbMu.Lock()
	defer c.hbMu.Unlock()
	c.beatAsked.Store(false)
	if c.hbStopped || c.ended.Load() {
		return
	}
	// With an ACK outstanding the asked beat must not postpone the zombie
	// check: a connection whose ACKs stopped but that keeps sending op 1
	// would never be found dead.
	outstanding := c.awaitingAck.Load()
	if c.beatLocked() && c.hb != nil && !outstanding {
		c.scheduleBeatLocked(c.interval) // the asked beat counts as this period's
	}
}

// beatLocked sends a heartbeat with the last sequence. Caller holds hbMu.
func (c *conn) beatLocked() bool {
	s := c.s
	seq := s.seq.Load()
	b := append(c.hbBuf[:0], `{"op":1,"d":`...)
	if seq > 0 {
		b = appendInt(b, seq)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, '}')
	c.hbSentAt.Store(time.Now().UnixNano())
	c.awaitingAck.Store(true)
	s.heartbeats.Add(1)
	return c.write(b)
}

// sendUser writes a payload of the user's (Send, TrySend) if the send limit
// allows it now, leaving the reserve for the shard's own payloads. It
// returns a *RateLimitError if the payload must wait, errNotLive if the
// connection has ended, ErrConnectionLost if the write failed.
func (c *conn) sendUser(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ended.Load() {
		return errNotLive
	}
	if d := c.limit.wait(time.Since(c.start), c.s.cfg.sendLimit-c.reserve); d > 0 {
		return &RateLimitError{RetryAfter: d, Limit: LimitSend}
	}
	if !c.writeLocked(p) {
		return ErrConnectionLost
	}
	return nil
}

// write sends one text payload and counts it against the send limit; on
// failure it ends the connection. It is safe for concurrent use.
func (c *conn) write(p []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(p)
}

// writeLocked is write with wmu held.
func (c *conn) writeLocked(p []byte) bool {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.writeTimeout))
	err := c.ws.WriteMessage(websocket.TextMessage, p)
	c.limit.record(time.Since(c.start))
	if err != nil {
		c.shutdown(connEnd{action: ActionResume, reason: "write failed: resuming", err: fmt.Errorf("gateway: shard %d: write: %w", c.s.id, err)})
		return false
	}
	return true
}
