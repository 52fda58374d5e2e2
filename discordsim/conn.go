package discordsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// maxPayload is the largest payload a client may send (bytes).
const maxPayload = 4096

// emitChunk is how many dispatches the writer numbers under one session lock;
// between chunks it lets queued control frames (ACKs, op 7/9, close) through.
const emitChunk = 64

// zstdWindow bounds the zstd-stream window (and so the client's decoder memory).
const zstdWindow = 32 << 10

// closeInfo is what the server knows about a gateway close code it sends.
type closeInfo struct {
	reason string
	// endsSession: the code's documented action is "identify anew" or
	// "never", so the session cannot be resumed after it.
	endsSession bool
}

// closeCodes is Discord's close code table, as data.
var closeCodes = map[int]closeInfo{
	4000: {"Unknown error.", false},
	4001: {"Unknown opcode.", false},
	4002: {"Error while decoding payload.", false},
	4003: {"Not authenticated.", false},
	4004: {"Authentication failed.", true},
	4005: {"Already authenticated.", false},
	4007: {"Invalid seq.", true},
	4008: {"Rate limited.", false},
	4009: {"Session timed out.", true},
	4010: {"Invalid shard.", true},
	4011: {"Sharding required.", true},
	4012: {"Invalid API version.", true},
	4013: {"Invalid intent(s).", true},
	4014: {"Disallowed intent(s).", true},
}

// ValidCloseCode reports whether code may be sent in a websocket close
// frame: 1000-1003, 1007-1013 or 3000-4999. RFC 6455 reserves the rest of
// 1000-2999 (1005, 1006 and 1015 must never be on the wire) and allows
// nothing outside 1000-4999; gorilla/websocket, which many Discord clients
// use, fails a connection that receives any other code (1014 included) with
// a protocol error, so the client would never see the code it was sent.
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1013, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// closeReason is Discord's reason text for code ("" if none).
func closeReason(code int) string { return closeCodes[code].reason }

type compressMode uint8

const (
	compressNone compressMode = iota
	compressZlib
	compressZstd
)

type cmdKind uint8

const (
	cmdFrame    cmdKind = iota // write a pre-encoded payload
	cmdReady                   // produce READY and the GUILD_CREATEs of sess
	cmdResumed                 // write replay, then produce RESUMED
	cmdClose                   // send a close frame, then close TCP after CloseGrace
	cmdDispatch                // number bodies in sess and write them (answers to commands)
)

// command is what the reader and the fault methods ask of the writer.
type command struct {
	kind   cmdKind
	frame  []byte
	sess   *session
	replay []entry
	bodies []*dispatchBody
	code   int
	reason string
}

// conn is one websocket connection. Its reader goroutine (the HTTP handler)
// parses client payloads and decides; its writer goroutine is the only one
// that writes data frames, so dispatch order always matches seq order.
type conn struct {
	srv      *Server
	id       uint64
	ws       *websocket.Conn
	raw      *batchConn
	log      *slog.Logger
	compress compressMode

	inbox      chan command
	wake       chan struct{} // capacity 1: pending or burst changed
	pending    atomic.Int64  // rate-driven messages to produce
	burst      atomic.Int64  // burst messages to produce
	zombie     atomic.Bool
	noACK      atomic.Bool // WithholdACKs: heartbeats get no op 11
	readerDone chan struct{}
	writerDone chan struct{}

	mu        sync.Mutex
	sess      *session // session this connection owns (identify/resume accepted)
	live      bool     // READY/RESUMED produced: faults and traffic target it
	closeCode int      // close code the server sent or is sending (0: none)
	over      bool     // closing (either side) or closed: never counted live again
	// counted is the session Server.shards counts this connection live
	// for: set with live, cleared as soon as the connection stops serving
	// it (overlap.go), which may be before live is.
	counted *session

	// writer goroutine only
	out        []byte
	zbuf       bytes.Buffer
	zw         *zlib.Writer
	zs         *zstd.Encoder
	closeSent  bool
	grace      *time.Timer
	batchDepth int
	held       []*dispatchBody // answers to commands waiting for READY/RESUMED

	// reader goroutine only
	sends     slidingLimit // every client payload
	presences slidingLimit // presence updates (op 3)
	deadline  time.Time
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	raw, ok := ws.UnderlyingConn().(*batchConn)
	if !ok { // cannot happen: the listener hands out batchConns
		_ = ws.Close()
		return
	}
	c := &conn{
		srv:        s,
		ws:         ws,
		raw:        raw,
		inbox:      make(chan command, inboxSize),
		wake:       make(chan struct{}, 1),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		sends:      newSlidingLimit(s.cfg.SendLimit, s.cfg.SendWindow),
		presences:  newSlidingLimit(s.cfg.PresenceLimit, s.cfg.PresenceWindow),
	}
	answerClose := ws.CloseHandler()
	ws.SetCloseHandler(func(code int, text string) error {
		c.peerClosing()
		return answerClose(code, text)
	})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.nextConnID++
	c.id = s.nextConnID
	s.conns[c] = struct{}{}
	s.st.Connections++
	s.wg.Add(2)
	s.mu.Unlock()
	defer s.wg.Done()
	c.log = s.log.With("conn", c.id, "remote", r.RemoteAddr)

	q := r.URL.Query()
	closeCode, reason := 0, ""
	switch q.Get("compress") {
	case "":
	case "zlib-stream":
		c.compress = compressZlib
	case "zstd-stream":
		c.compress = compressZstd
	default:
		closeCode, reason = 4000, "discordsim: unsupported compress "+q.Get("compress")
	}
	if enc := q.Get("encoding"); enc != "json" {
		closeCode, reason = 4000, "discordsim: only encoding=json is supported, got "+enc
	}
	if q.Get("v") != "10" {
		closeCode, reason = 4012, closeReason(4012)
	}
	if err := c.initCompression(); err != nil {
		closeCode, reason = 4000, "discordsim: "+err.Error()
	}
	go func() {
		defer s.wg.Done()
		c.writeLoop()
	}()
	if closeCode != 0 {
		c.closeWith(closeCode, reason)
	} else {
		c.enqueue(command{kind: cmdFrame, frame: s.hello})
	}
	c.log.Debug("connected", "compress", q.Get("compress"))
	clientCode := c.readLoop()
	c.teardown(clientCode)
}

func (c *conn) initCompression() error {
	var err error
	switch c.compress {
	case compressZlib:
		c.zw, err = zlib.NewWriterLevel(&c.zbuf, zlib.BestSpeed)
	case compressZstd:
		c.zs, err = zstd.NewWriter(&c.zbuf, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow), zstd.WithLowerEncoderMem(true))
	}
	if err != nil {
		c.compress = compressNone
	}
	return err
}

// ---- helpers used by the reader, the fault methods and the scheduler ----

// inboxSize is how many commands may wait for a connection's writer. A
// writer that far behind has a client that does not read.
const inboxSize = 256

// enqueue hands cmd to the writer without ever blocking: the reader, the
// fault methods and the single scheduler goroutine call it, and one stalled
// client must not freeze them. If the inbox is full the client is not
// reading (its writer is stuck in a write): the connection is dropped (TCP
// closed, no close frame: it could not be delivered), as Discord disconnects
// a client that does not read, and counted in Stats.SlowClientDrops.
func (c *conn) enqueue(cmd command) {
	select {
	case c.inbox <- cmd:
		return
	case <-c.writerDone:
		return
	default:
	}
	c.srv.mu.Lock()
	c.srv.st.SlowClientDrops++
	c.srv.mu.Unlock()
	c.log.Debug("client not reading: command queue full, dropping the connection")
	c.dropTCP()
}

func (c *conn) sendFrame(frame []byte) { c.enqueue(command{kind: cmdFrame, frame: frame}) }

func (c *conn) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// closeWith starts a server close with code (once per connection).
func (c *conn) closeWith(code int, reason string) {
	c.mu.Lock()
	if c.closeCode != 0 {
		c.mu.Unlock()
		return
	}
	c.closeCode = code
	c.over = true
	c.endLiveLocked() // it serves its session no longer
	c.mu.Unlock()
	c.srv.mu.Lock()
	c.srv.st.Closes[code]++
	c.srv.mu.Unlock()
	c.log.Debug("closing", "code", code, "reason", reason)
	c.enqueue(command{kind: cmdClose, code: code, reason: reason})
}

func (c *conn) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode != 0
}

// dropTCP closes the TCP connection with no close frame.
func (c *conn) dropTCP() { _ = c.raw.Conn.Close() }

func (c *conn) isShard(shard int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil && c.live && c.sess.shardID == shard && c.closeCode == 0
}

func (c *conn) owned() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// invalidate ends the connection's session (op 9 d=false): the connection is
// no longer authenticated.
func (c *conn) invalidate() {
	c.mu.Lock()
	sess := c.sess
	c.endLiveLocked()
	c.sess, c.live = nil, false
	c.mu.Unlock()
	if sess == nil {
		return
	}
	sess.mu.Lock()
	if sess.conn == c {
		sess.conn = nil
	}
	sess.ended = true
	sess.mu.Unlock()
	c.srv.removeSession(sess)
}

// release forgets sess if this connection still owns it (another connection
// resumed it).
func (c *conn) release(sess *session) {
	c.mu.Lock()
	if c.sess == sess {
		c.endLiveLocked()
		c.sess, c.live = nil, false
	}
	c.mu.Unlock()
}

func (s *Server) removeSession(sess *session) {
	s.mu.Lock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
	}
	s.mu.Unlock()
}

// teardown runs once the reader has ended: it stops the writer, closes TCP
// and detaches or ends the session.
func (c *conn) teardown(clientCode int) {
	close(c.readerDone)
	<-c.writerDone
	c.dropTCP()
	if c.zs != nil {
		_ = c.zs.Close()
	}
	c.mu.Lock()
	sess, serverCode := c.sess, c.closeCode
	c.over = true
	c.endLiveLocked()
	c.sess, c.live = nil, false
	c.mu.Unlock()
	end := clientCode == websocket.CloseNormalClosure || clientCode == websocket.CloseGoingAway
	if serverCode != 0 {
		end = closeCodes[serverCode].endsSession
	}
	if sess != nil {
		sess.mu.Lock()
		if sess.conn == c {
			sess.conn = nil
			if end {
				sess.ended = true
			} else {
				sess.detachedAt = time.Now()
			}
		} else {
			end = false // another connection resumed it
		}
		sess.mu.Unlock()
		if end {
			c.srv.removeSession(sess)
		}
	}
	s := c.srv
	s.mu.Lock()
	delete(s.conns, c)
	if clientCode != 0 {
		s.st.ClientCloses[clientCode]++
	}
	s.mu.Unlock()
	c.log.Debug("disconnected", "client_code", clientCode, "server_code", serverCode, "session_ended", end)
}

// ---- reader ----

// readLoop reads client payloads until the connection ends and returns the
// close code the client sent (0 if none).
func (c *conn) readLoop() int {
	s := c.srv
	buf := make([]byte, maxPayload+1)
	c.deadline = time.Now().Add(s.cfg.HeartbeatTimeout)
	_ = c.ws.SetReadDeadline(c.deadline)
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			return c.readError(err)
		}
		// The arrival time, taken before any work on the payload: identify
		// spacing is judged on it, as Discord would on receipt.
		at := time.Now()
		if c.closing() {
			continue // discard until the client answers our close frame
		}
		n, err := io.ReadFull(r, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return c.readError(err)
		}
		s.payloads.Add(1)
		if !c.sends.allow(at) {
			c.closeWith(4008, closeReason(4008))
			continue
		}
		if mt != websocket.TextMessage {
			c.closeWith(4002, closeReason(4002))
			continue
		}
		if n > maxPayload {
			c.closeWith(4002, closeReason(4002))
			continue
		}
		c.handle(buf[:n], at)
	}
}

func (c *conn) readError(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if ce.Code == websocket.CloseAbnormalClosure || ce.Code == websocket.CloseNoStatusReceived {
			return 0
		}
		return ce.Code
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !c.closing() {
		c.log.Debug("heartbeat timeout")
		c.closeWith(4009, closeReason(4009))
	}
	return 0
}

// slidingLimit admits at most len(times) events in any window: a ring of
// the latest admitted instants.
type slidingLimit struct {
	times  []time.Time
	window time.Duration
	count  int
}

func newSlidingLimit(limit int, window time.Duration) slidingLimit {
	return slidingLimit{times: make([]time.Time, limit), window: window}
}

// allow admits an event at now, or reports that it is over the limit.
func (l *slidingLimit) allow(now time.Time) bool {
	limit := len(l.times)
	if limit == 0 {
		return true
	}
	i := l.count % limit
	if l.count >= limit && now.Sub(l.times[i]) < l.window {
		return false
	}
	l.times[i] = now
	l.count++
	return true
}

type inbound struct {
	Op *int            `json:"op"`
	D  json.RawMessage `json:"d"`
}

// handle processes one client payload that arrived at at.
func (c *conn) handle(p []byte, at time.Time) {
	var in inbound
	if err := json.Unmarshal(p, &in); err != nil || in.Op == nil {
		c.closeWith(4002, closeReason(4002))
		return
	}
	if op := *in.Op; knownOp(op) {
		c.srv.opsIn[op].Add(1)
	}
	switch *in.Op {
	case 1:
		c.deadline = time.Now().Add(c.srv.cfg.HeartbeatTimeout)
		_ = c.ws.SetReadDeadline(c.deadline)
		if !c.noACK.Load() {
			c.sendFrame(frameACK)
		}
	case 2:
		c.identify(in.D, at)
	case 6:
		c.resume(in.D)
	case 3, 4, 8, 31:
		c.command(*in.Op, in.D, at)
	default:
		c.closeWith(4001, closeReason(4001))
	}
}

// authData is what identify and resume both carry and check first.
type authData interface {
	token() string
	// incomplete reports a required field missing.
	incomplete() bool
}

func (d *identifyData) token() string { return d.Token }
func (d *resumeData) token() string   { return d.Token }

// incomplete: Discord requires token, properties and intents in Identify
// (shard is optional, default [0, 1]). Its docs do not say which close code
// a missing one gets; the simulator closes 4002 (error while decoding
// payload), the code for a payload it cannot make sense of.
func (d *identifyData) incomplete() bool {
	p := bytes.TrimSpace(d.Properties)
	return d.Token == "" || d.Intents == nil || len(p) == 0 || p[0] != '{'
}

func (d *resumeData) incomplete() bool { return false }

// admit decodes an identify or resume payload into d and applies the checks
// both share: valid JSON with the required fields (4002), one
// authentication per connection (4005), the bot token (4004). It reports
// whether to go on.
func (c *conn) admit(raw json.RawMessage, d authData) bool {
	switch {
	case json.Unmarshal(raw, d) != nil || d.incomplete():
		c.closeWith(4002, closeReason(4002))
	case c.owned() != nil:
		c.closeWith(4005, closeReason(4005))
	case d.token() != c.srv.cfg.Token:
		c.closeWith(4004, closeReason(4004))
	default:
		return true
	}
	return false
}

type identifyData struct {
	Token      string          `json:"token"`
	Intents    *int64          `json:"intents"`
	Properties json.RawMessage `json:"properties"` // required (an object), otherwise unused
	Shard      []int           `json:"shard"`
	// large_threshold, presence, compress: accepted, not used.
}

// identify handles op 2 that arrived at at.
func (c *conn) identify(raw json.RawMessage, at time.Time) {
	s := c.srv
	var d identifyData
	if !c.admit(raw, &d) {
		return
	}
	shardID, count := 0, 1
	if d.Shard != nil {
		if len(d.Shard) != 2 || d.Shard[1] < 1 || d.Shard[0] < 0 || d.Shard[0] >= d.Shard[1] {
			c.closeWith(4010, closeReason(4010))
			return
		}
		shardID, count = d.Shard[0], d.Shard[1]
	}
	intents := *d.Intents // present: admit checked
	if intents&^IntentsAll != 0 || intents < 0 {
		c.closeWith(4013, closeReason(4013))
		return
	}
	if intents&IntentsPrivileged&^s.cfg.AllowedIntents != 0 {
		c.closeWith(4014, closeReason(4014))
		return
	}
	if guildCountFor(s.cfg.Guilds, shardID, count) > s.cfg.MaxGuildsPerShard {
		c.closeWith(4011, closeReason(4011))
		return
	}
	now := at
	bucket := shardID % s.cfg.MaxConcurrency
	s.mu.Lock()
	arr := s.buckets[bucket]
	if arr == nil {
		arr = new(arrivals)
		s.buckets[bucket] = arr
	}
	if near, ok := arr.within(now, s.cfg.IdentifyWindow); ok {
		s.st.IdentifyViolations++
		s.mu.Unlock()
		c.log.Debug("identify too soon for its bucket", "shard", shardID, "bucket", bucket, "apart", now.Sub(near).Abs())
		c.sendFrame(frameInvalidFalse)
		return
	}
	if s.budgetLocked(now) <= 0 {
		s.mu.Unlock()
		c.log.Debug("identify with no session starts left", "shard", shardID)
		c.closeWith(4004, closeReason(4004))
		return
	}
	s.remaining--
	if s.resetAt.IsZero() {
		s.resetAt = now.Add(s.cfg.SessionStartResetAfter)
	}
	arr.add(now)
	s.st.Identifies++
	s.st.IdentifiesByBucket[bucket]++
	sess := &session{id: s.newSessionIDLocked(), shardID: shardID, shardCount: count, intents: intents,
		guilds: guildsFor(s.cfg.Guilds, shardID, count), conn: c}
	s.sessions[sess.id] = sess
	s.mu.Unlock()
	c.mu.Lock()
	c.sess = sess
	c.mu.Unlock()
	c.log.Debug("identified", "shard", shardID, "count", count, "guilds", len(sess.guilds))
	if d := s.cfg.ReadyDelay; d > 0 {
		// enqueue gives up once the connection's writer has ended.
		time.AfterFunc(d, func() { c.enqueue(command{kind: cmdReady, sess: sess}) })
		return
	}
	c.enqueue(command{kind: cmdReady, sess: sess})
}

type resumeData struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	Seq       *int64 `json:"seq"`
}

func (c *conn) resume(raw json.RawMessage) {
	s := c.srv
	var d resumeData
	if !c.admit(raw, &d) {
		return
	}
	var seq int64
	if d.Seq != nil {
		seq = *d.Seq
	}
	s.mu.Lock()
	sess := s.sessions[d.SessionID]
	s.mu.Unlock()
	reject := func(why string) {
		s.mu.Lock()
		s.st.ResumesRejected++
		s.mu.Unlock()
		c.log.Debug("resume rejected", "why", why)
		c.sendFrame(frameInvalidFalse)
	}
	if sess == nil {
		reject("unknown session")
		return
	}
	sess.mu.Lock()
	if sess.expiredLocked(time.Now(), s.cfg.SessionTTL) || !sess.started {
		sess.ended = true
		sess.mu.Unlock()
		s.removeSession(sess)
		reject("session expired")
		return
	}
	if seq > sess.seq || seq < sess.oldestLocked()-1 {
		last, oldest := sess.seq, sess.oldestLocked()
		sess.mu.Unlock()
		c.log.Debug("resume with invalid seq", "seq", seq, "last", last, "oldest_held", oldest)
		c.closeWith(4007, closeReason(4007))
		return
	}
	old := sess.conn
	sess.conn = c
	sess.detachedAt = time.Time{}
	replay := sess.sinceLocked(seq)
	sess.mu.Unlock()
	if old != nil && old != c {
		old.release(sess)
		old.dropTCP()
	}
	c.mu.Lock()
	c.sess = sess
	c.mu.Unlock()
	s.mu.Lock()
	s.st.Replayed += len(replay)
	s.mu.Unlock()
	c.log.Debug("resuming", "shard", sess.shardID, "seq", seq, "replay", len(replay))
	c.enqueue(command{kind: cmdResumed, sess: sess, replay: replay})
}

// ---- writer ----

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer c.dropTCP()
	defer func() {
		// A burst this connection did not get to is its session's.
		c.mu.Lock()
		sess := c.sess
		c.mu.Unlock()
		if sess != nil {
			c.carryBurst(sess, c.burst.Swap(0))
		}
	}()
	defer func() {
		if c.grace != nil {
			c.grace.Stop()
		}
	}()
	for {
		var graceC <-chan time.Time
		if c.grace != nil {
			graceC = c.grace.C
		}
		select {
		case cmd := <-c.inbox:
			if !c.exec(cmd) {
				return
			}
		case <-c.wake:
			if !c.generate() {
				return
			}
		case <-c.readerDone:
			c.drainInbox()
			return
		case <-graceC:
			return
		case <-c.srv.closing:
			return
		}
	}
}

// drainInbox executes every queued command without blocking.
func (c *conn) drainInbox() bool {
	for {
		select {
		case cmd := <-c.inbox:
			if !c.exec(cmd) {
				return false
			}
		default:
			return true
		}
	}
}

func (c *conn) beginBatch() {
	if c.batchDepth == 0 {
		c.raw.cork()
	}
	c.batchDepth++
}

func (c *conn) endBatch() error {
	c.batchDepth--
	if c.batchDepth == 0 {
		return c.raw.uncork()
	}
	return nil
}

// exec runs one command; false means the connection is broken.
func (c *conn) exec(cmd command) bool {
	if c.closeSent {
		return true // nothing goes out after a close frame
	}
	switch cmd.kind {
	case cmdFrame:
		return c.writePayload(cmd.frame) == nil
	case cmdReady:
		return c.produceReady(cmd.sess)
	case cmdResumed:
		return c.produceResumed(cmd.sess, cmd.replay)
	case cmdDispatch:
		return c.produceDispatches(cmd.sess, cmd.bodies)
	case cmdClose:
		c.closeSent = true
		msg := websocket.FormatCloseMessage(cmd.code, cmd.reason)
		if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
			return false
		}
		c.grace = time.NewTimer(c.srv.cfg.CloseGrace)
	}
	return true
}

func (c *conn) produceReady(sess *session) bool {
	s := c.srv
	guildBodies := make([]*dispatchBody, len(sess.guilds))
	for i, g := range sess.guilds {
		guildBodies[i] = s.guilds.get(g)
	}
	ready := readyBody(sess.id, s.ResumeURL(), sess.shardID, sess.shardCount, sess.guilds)
	sess.mu.Lock()
	if sess.conn != c || sess.ended {
		sess.mu.Unlock()
		return true
	}
	entries := make([]entry, 0, 1+len(guildBodies))
	entries = append(entries, sess.appendLocked(ready, 0, 0, s.cfg.ReplayBuffer))
	for _, b := range guildBodies {
		entries = append(entries, sess.appendLocked(b, 0, 0, s.cfg.ReplayBuffer))
	}
	sess.started = true
	sess.mu.Unlock()
	s.dispatches.Add(uint64(len(entries)))
	c.setLive(sess)
	return c.writeEntries(entries) && c.flushHeld(sess) && c.generate()
}

func (c *conn) produceResumed(sess *session, replay []entry) bool {
	s := c.srv
	if !c.writeEntries(replay) {
		return false
	}
	sess.mu.Lock()
	if sess.conn != c || sess.ended {
		sess.mu.Unlock()
		return true
	}
	e := sess.appendLocked(resumedBody, 0, 0, s.cfg.ReplayBuffer)
	left := sess.burstLeft
	sess.burstLeft, sess.carryTo = 0, c
	sess.mu.Unlock()
	if left > 0 {
		addSaturating(&c.burst, left) // sent by generate, after RESUMED
	}
	s.dispatches.Add(1)
	s.mu.Lock()
	s.st.Resumes++
	s.mu.Unlock()
	c.setLive(sess)
	return c.writeEntries([]entry{e}) && c.flushHeld(sess) && c.generate()
}

func (c *conn) setLive(sess *session) {
	c.mu.Lock()
	if c.sess == sess {
		c.startLiveLocked(sess)
	}
	c.mu.Unlock()
}

func (c *conn) writeEntries(es []entry) bool {
	if len(es) == 0 {
		return true
	}
	c.beginBatch()
	for _, e := range es {
		if c.writeEntry(e) != nil {
			_ = c.endBatch()
			return false
		}
	}
	return c.endBatch() == nil
}

func (c *conn) writeEntry(e entry) error {
	c.out = appendDispatch(c.out[:0], e)
	return c.writePayload(c.out)
}

// writePayload sends one gateway payload, compressed as the connection asked.
func (c *conn) writePayload(p []byte) error {
	if c.zombie.Load() {
		return nil
	}
	if c.compress == compressNone {
		return c.ws.WriteMessage(websocket.TextMessage, p)
	}
	frame, err := c.compressPayload(p)
	if err != nil {
		return err
	}
	return c.ws.WriteMessage(websocket.BinaryMessage, frame)
}

// compressPayload runs p through the connection's stream context with a sync
// flush and returns the resulting binary message, valid until the next call.
// Only the writer, or the burst preparer it hands the context to, calls it.
func (c *conn) compressPayload(p []byte) ([]byte, error) {
	c.zbuf.Reset()
	switch c.compress {
	case compressZlib:
		if _, err := c.zw.Write(p); err != nil {
			return nil, err
		}
		if err := c.zw.Flush(); err != nil {
			return nil, err
		}
	case compressZstd:
		if _, err := c.zs.Write(p); err != nil {
			return nil, err
		}
		if err := c.zs.Flush(); err != nil {
			return nil, err
		}
	}
	return c.zbuf.Bytes(), nil
}

// generate produces the pending rate and burst messages (rate traffic
// directly, bursts through prepared chunks: burst.go). Before the session
// is live (READY/RESUMED written) they wait, so they never overtake the
// replay; without a session they are dropped.
func (c *conn) generate() bool {
	c.mu.Lock()
	sess, live := c.sess, c.live
	c.mu.Unlock()
	if sess == nil {
		c.pending.Store(0)
		c.burst.Store(0)
		return true
	}
	if !live || c.closeSent {
		return true
	}
	c.beginBatch()
	ok := c.emit(sess)
	if err := c.endBatch(); err != nil {
		return false
	}
	return ok
}

func (c *conn) emit(sess *session) bool {
	for {
		rate, burst := c.pending.Swap(0), c.burst.Swap(0)
		if rate <= 0 && burst <= 0 {
			return true
		}
		if rate > 0 {
			if ok, stop := c.emitDirect(sess, rate); !ok || stop {
				return ok
			}
		}
		if burst > 0 {
			if ok, stop := c.emitBurst(sess, burst); !ok || stop {
				return ok
			}
		}
	}
}

// emitDirect numbers and writes n rate-driven dispatches emitChunk at a time,
// letting queued commands through between chunks. stop reports that it could
// not go on (session gone, close frame sent, no messages for this shard); ok
// false that the connection is broken.
func (c *conn) emitDirect(sess *session, n int64) (ok, stop bool) {
	s := c.srv
	var batch [emitChunk]entry
	for n > 0 {
		if !c.drainInbox() {
			return false, true
		}
		if c.closeSent {
			return true, true
		}
		k := int(min(n, emitChunk))
		idBase := uint64(time.Now().UnixMilli()-discordEpochMs) << 22
		got := 0
		sess.mu.Lock()
		if sess.conn != c || sess.ended {
			sess.mu.Unlock()
			return true, true
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
			return true, true // this shard gets no messages
		}
		s.dispatches.Add(uint64(got))
		for i := 0; i < got; i++ {
			if c.writeEntry(batch[i]) != nil {
				return false, true
			}
		}
		n -= int64(k)
	}
	return true, false
}
