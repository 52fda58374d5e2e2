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
	q := u.Query()
	q.Set("v", "10")
	q.Set("encoding", "json")
	q.Del("compress")
	if c != CompressionNone && c != "" {
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
// reads (readLoop); writeLoop owns heartbeats, Resume and Send; an acquire
// goroutine exists only while waiting for the identify gate, and writes the
// Identify itself the moment the gate lets it go (under wmu, as every data
// write), so no goroutine hop lies between the grant and the socket.
type conn struct {
	s       *Shard
	ws      *websocket.Conn
	log     *slog.Logger
	ctx     context.Context // ends with the connection or the shard
	cancel  context.CancelFunc
	infl    inflater
	start   time.Time
	resume  bool
	sessID  string
	resumeS int64 // seq to resume from

	ticket   uint64 // the identify ticket this connection holds (let through Approach), 0 if it resumes
	released bool   // the ticket was given back (reader goroutine only)

	quit       chan struct{} // closed by shutdown
	endOnce    sync.Once
	endMu      sync.Mutex
	localEnd   *connEnd // set by shutdown when the shard itself ended the connection
	helloCh    chan time.Duration
	hbNow      chan struct{}
	priority   chan []byte
	wake       chan struct{}
	writerDone chan struct{}
	acquireWG  sync.WaitGroup
	hello      bool

	// identifying is set just before the Identify is written; identified is
	// closed once the acquire goroutine is done (the Identifying transition
	// made). READY waits for it so that Ready never precedes Identifying.
	identifying atomic.Bool
	identified  chan struct{}

	ready       atomic.Bool
	awaitingAck atomic.Bool
	hbSentAt    atomic.Int64 // unix nanos
	interval    atomic.Int64

	wmu   sync.Mutex  // one data writer at a time (gorilla allows one); guards limit
	limit *sendWindow // send times of every data write
}

// connect dials and runs one connection until it ends.
func (s *Shard) connect(ctx context.Context, rawURL, sessID string, resume bool, ticket uint64) connEnd {
	full, err := gatewayURL(rawURL, s.cfg.compression)
	if err == nil {
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, s.cfg.handshakeTimeout)
		var ws *websocket.Conn
		var resp interface{ Close() error }
		ws, r, derr := s.dialer.DialContext(dctx, full, nil)
		cancel()
		if r != nil && r.Body != nil {
			resp = r.Body
			_ = resp.Close()
		}
		if derr == nil {
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
	cctx, cancel := context.WithCancel(ctx)
	c := &conn{
		s: s, ws: ws, ctx: cctx, cancel: cancel, start: start,
		log:    s.log,
		resume: resume, sessID: sessID, resumeS: s.seq.Load(), ticket: ticket,
		quit:       make(chan struct{}),
		helloCh:    make(chan time.Duration, 1),
		hbNow:      make(chan struct{}, 1),
		priority:   make(chan []byte, 1),
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		identified: make(chan struct{}),
		limit:      newSendWindow(s.cfg.sendLimit, s.cfg.sendWindow),
	}
	return c
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
		close(c.writerDone)
	} else {
		c.infl = infl
		c.ws.SetReadLimit(int64(s.cfg.readLimit))
		_ = c.ws.SetReadDeadline(c.start.Add(s.cfg.handshakeTimeout))
		go c.writeLoop()
		end = c.readLoop()
		c.shutdown(end)
	}
	<-c.writerDone
	c.cancel()
	c.acquireWG.Wait()
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
		c.endMu.Unlock()
		close(c.quit)
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
		select {
		case c.hbNow <- struct{}{}:
		default:
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
	c.interval.Store(int64(interval))
	c.helloCh <- interval
	if c.resume {
		p, err := c.s.resumePayload(c.sessID, c.resumeS)
		if err != nil {
			return &connEnd{action: ActionStop, reason: "cannot build resume", err: err}
		}
		c.s.transition(StateResuming, fmt.Sprintf("hello: resuming at seq %d", c.resumeS), 0, nil)
		c.priority <- p
		return nil
	}
	// Built now, while the gate is still closed: nothing but the write
	// lies between the grant and the socket.
	p, err := c.s.identifyPayload()
	if err != nil {
		return &connEnd{action: ActionStop, reason: "cannot build identify", err: err}
	}
	c.acquireWG.Add(1)
	go c.acquireAndIdentify(p)
	return nil
}

// acquireAndIdentify waits for the gate's go while the reader keeps reading
// (ACKs, op 7), then writes the Identify p at once on this goroutine: the
// identify window is judged on arrival, so the delay from grant to socket
// must be short and steady.
func (c *conn) acquireAndIdentify(p []byte) {
	defer c.acquireWG.Done()
	defer close(c.identified)
	s := c.s
	if err := s.gate.Acquire(c.ctx, c.ticket); err != nil {
		if c.ctx.Err() == nil {
			c.shutdown(connEnd{action: ActionIdentify, reason: "identify gate refused: " + err.Error(), err: err})
		}
		return
	}
	select {
	case <-c.quit:
		return // the connection ended meanwhile; run releases the turn
	default:
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
	name := eventName(e.t)
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
		c.ready.Store(true)
		c.wakeWriter()
		s.transition(StateReady, "resumed", 0, nil)
	case "GUILD_CREATE", "GUILD_DELETE":
		c.trackGuild(name == "GUILD_CREATE", e.d)
	}
	s.events.Add(1)
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
	c.ready.Store(true)
	c.wakeWriter()
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

func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop is the connection's only data writer (gorilla allows one):
// heartbeats with zombie detection, Identify/Resume, and Send under the limit.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	s := c.s
	hb := time.NewTimer(time.Hour)
	hb.Stop()
	defer hb.Stop()
	lim := time.NewTimer(time.Hour)
	lim.Stop()
	defer lim.Stop()
	var interval time.Duration
	var hbBuf []byte
	reserve := reserveFor(s.cfg.sendLimit, s.cfg.sendWindow, 0)

	beat := func() bool {
		seq := s.seq.Load()
		hbBuf = append(hbBuf[:0], `{"op":1,"d":`...)
		if seq > 0 {
			hbBuf = appendInt(hbBuf, seq)
		} else {
			hbBuf = append(hbBuf, "null"...)
		}
		hbBuf = append(hbBuf, '}')
		c.hbSentAt.Store(time.Now().UnixNano())
		c.awaitingAck.Store(true)
		s.heartbeats.Add(1)
		return c.write(hbBuf)
	}

	for {
		var sendq chan *sendReq
		if c.ready.Load() {
			c.wmu.Lock()
			d := c.limit.wait(time.Since(c.start), s.cfg.sendLimit-reserve)
			c.wmu.Unlock()
			if d <= 0 {
				sendq = s.sendq
			} else {
				lim.Reset(d)
			}
		}
		select {
		case <-c.quit:
			return
		case <-c.ctx.Done():
			c.shutdown(connEnd{stopped: true, reason: "closed"})
			return
		case interval = <-c.helloCh:
			reserve = reserveFor(s.cfg.sendLimit, s.cfg.sendWindow, interval)
			j := min(max(s.cfg.heartbeatJitter(), 0), 1)
			hb.Reset(time.Duration(j * float64(interval)))
		case <-hb.C:
			if c.awaitingAck.Load() {
				c.shutdown(connEnd{action: ActionResume, reason: "zombie: no ACK in " + interval.String()})
				return
			}
			if !beat() {
				return
			}
			hb.Reset(interval)
		case <-c.hbNow:
			// With an ACK outstanding the requested beat must not postpone
			// the zombie check: a connection whose ACKs stopped but that
			// keeps sending op 1 would never be found dead.
			outstanding := c.awaitingAck.Load()
			if !beat() {
				return
			}
			if interval > 0 && !outstanding {
				hb.Reset(interval) // the requested beat counts as this period's
			}
		case p := <-c.priority:
			if !c.write(p) {
				return
			}
		case req := <-sendq:
			ok := c.write(req.payload)
			if ok {
				req.done <- nil
			} else {
				req.done <- ErrConnectionLost
				return
			}
		case <-lim.C:
		case <-c.wake:
		}
	}
}

// write sends one text payload and counts it against the send limit; on
// failure it ends the connection. It is safe for concurrent use.
func (c *conn) write(p []byte) bool {
	c.wmu.Lock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.writeTimeout))
	err := c.ws.WriteMessage(websocket.TextMessage, p)
	c.limit.record(time.Since(c.start))
	c.wmu.Unlock()
	if err != nil {
		c.shutdown(connEnd{action: ActionResume, reason: "write failed: resuming", err: fmt.Errorf("gateway: shard %d: write: %w", c.s.id, err)})
		return false
	}
	return true
}
