// Package gateway runs one shard's connection to Discord's gateway v10 as an
// explicit state machine: identify through a shared gate, heartbeats with
// zombie detection, resume with replay, zlib-stream and zstd-stream, the
// per-connection send limit, and close codes handled from a table.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/shardtop/shardtop/internal/secret"
)

// Session is what must be persisted to resume after a restart. The zero
// value means no session.
type Session struct {
	ID        string
	Sequence  int64
	ResumeURL string
	// Guilds is the shard's guild count when the session was taken, so that
	// a shard resuming it (which gets no READY) can show it at once. It is
	// never sent to Discord; see WithSession for how it is kept up to date.
	Guilds int
}

// Resumable reports whether the session can be resumed.
func (s Session) Resumable() bool { return s.ID != "" }

// Dispatch is one op 0 event.
type Dispatch struct {
	ShardID, ShardCount int
	// Event is the event name, e.g. "MESSAGE_CREATE" (interned for known names).
	Event string
	Seq   int64
	// Data is the raw `d` JSON; valid only during the handler call.
	Data []byte
}

// Stats is a cheap snapshot of a shard.
type Stats struct {
	State      State
	StateSince time.Time
	// Latency is the last heartbeat round trip; SmoothedLatency its EWMA (alpha 0.2).
	Latency, SmoothedLatency time.Duration
	Guilds                   int    // guilds seen in READY/GUILD_CREATE minus GUILD_DELETE (not unavailable); a resumed saved session starts from Session.Guilds (see WithSession)
	Events                   uint64 // dispatches received, total
	Sequence                 int64
	SessionID                string
	// ResumeURL is the session's resume_gateway_url ("" if none).
	ResumeURL         string
	SequenceGaps      uint64 // dispatches whose s skipped numbers
	ReconnectAttempts int    // connection attempts since the last Ready
	Reconnects        uint64 // connections lost or refused, total
	LastCloseCode     int
	LastCloseReason   string
	LastCloseAt       time.Time
	// LastError and LastErrorAt are the error of the last transition that
	// had one (a failed dial, a bad frame, a fatal close), in full.
	LastError   string
	LastErrorAt time.Time
	// RetryAt is when the next connection attempt starts while the shard
	// waits out a backoff (Reconnecting); zero otherwise.
	RetryAt time.Time
	// Ticket is the identify gate's ticket the shard holds (queued, let
	// through or granted), 0 if none: what to ask the gate its place of.
	Ticket              uint64
	Resumes, Identifies uint64 // RESUMED received; Identify payloads sent
	Heartbeats          uint64 // heartbeats sent
}

// Shard is one connection to the gateway. Create it with New; all methods
// are safe for concurrent use.
type Shard struct {
	id, count int
	token     secret.Token
	cfg       config
	log       *slog.Logger
	gate      IdentifyGate
	dialer    *websocket.Dialer

	lifeMu   sync.Mutex
	started  bool
	stopping bool
	stopCode int
	// codeCommitted: stopCode went out in a close frame, or the loop ended
	// with it (commitCloseCode); End can no longer upgrade it to 1000.
	codeCommitted bool
	cancel        context.CancelFunc
	done          chan struct{} // closed when the run loop has ended (or Close before Start)
	runErr        error         // why the loop ended in Failed

	transMu sync.Mutex // serializes transitions and state handler calls

	mu         sync.Mutex // guards the fields below (short, never across I/O)
	since      time.Time
	changed    chan struct{} // closed and replaced on every transition
	sessionID  string
	resumeURL  string
	lastCode   int
	lastReason string
	lastAt     time.Time
	retryAt    time.Time // see Stats.RetryAt
	lastErr    string    // see Stats.LastError
	lastErrAt  time.Time
	// resumeDialFails counts dials to the resume URL that failed in a row
	// (owned by the run goroutine); at maxResumeURLDialFails the shard
	// resumes through the gateway URL instead.
	resumeDialFails int

	// ticket is the identify ticket held, 0 if none (see Stats.Ticket).
	ticket      atomic.Uint64
	state       atomic.Uint32
	seq         atomic.Int64
	events      atomic.Uint64
	gaps        atomic.Uint64
	reconnects  atomic.Uint64
	resumes     atomic.Uint64
	identifies  atomic.Uint64
	heartbeats  atomic.Uint64
	attempts    atomic.Int64
	latency     atomic.Int64
	smoothed    atomic.Int64
	guildCount  atomic.Int64
	handshakeNS atomic.Int64 // smoothed dial-to-Hello time
	// byName counts dispatches by event name: knownEventNames' order, then
	// the unknown names (see EventCounts).
	byName [len(knownEventNames) + 1]atomic.Uint64

	// guilds are the sorted IDs of the counted guilds; unseen counts guilds
	// counted without a known ID (seeded by WithSession until the next
	// READY). guildCount = len(guilds) + unseen. Both are owned by the
	// connection goroutine (and New).
	guilds []uint64
	unseen int
	// created is when New ran: a GUILD_CREATE whose joined_at is later is a
	// guild joined since (see trackGuild).
	created time.Time

	// live is the connection Send writes on: set once it is Ready
	// (READY or RESUMED), cleared when it ends.
	live atomic.Pointer[conn]

	presenceMu sync.Mutex // held from the presence check to the write, so the limit holds on arrival
	presence   sendWindow // presence update times (since created); guarded by presenceMu
}

// New creates a shard for [shardID, shardCount]. It does not connect; call
// Open or Start.
func New(token string, shardID, shardCount int, opts ...Option) *Shard {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	s := &Shard{
		id:       shardID,
		count:    shardCount,
		token:    secret.New(token),
		cfg:      cfg,
		gate:     cfg.gate,
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
		presence: makeSendWindow(cfg.presenceLimit, cfg.presenceWindow),
	}
	if s.gate == nil {
		s.gate = NewLocalGate(DefaultIdentifyWindow)
	}
	s.log = cfg.logger
	if s.log != discardLogger {
		s.log = s.log.With("shard", shardID, "shards", shardCount)
	}
	s.dialer = cfg.newDialer()
	s.since = time.Now()
	s.created = s.since
	if cfg.session.ID != "" {
		s.sessionID, s.resumeURL = cfg.session.ID, cfg.session.ResumeURL
		s.seq.Store(cfg.session.Sequence)
		s.unseen = max(cfg.session.Guilds, 0)
		s.guildCount.Store(int64(s.unseen))
	}
	return s
}

// String describes the shard without secrets.
func (s *Shard) String() string {
	return fmt.Sprintf("gateway.Shard{id=%d/%d state=%s}", s.id, s.count, s.State())
}

// GoString is String: %#v must not print the token.
func (s *Shard) GoString() string { return s.String() }

// LogValue logs the shard as its id, count and state.
func (s *Shard) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("id", s.id), slog.Int("count", s.count), slog.String("state", s.State().String()))
}

// ID returns the shard id.
func (s *Shard) ID() int { return s.id }

// Count returns the shard count.
func (s *Shard) Count() int { return s.count }

// State returns the current state.
func (s *Shard) State() State { return State(s.state.Load()) }

// Session returns the current session (ID, last seq, resume URL, guild
// count), or the zero Session if there is none.
func (s *Shard) Session() Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessionID == "" {
		return Session{}
	}
	return Session{ID: s.sessionID, Sequence: s.seq.Load(), ResumeURL: s.resumeURL, Guilds: int(s.guildCount.Load())}
}

// Stats returns a snapshot; it takes one short lock and allocates nothing.
func (s *Shard) Stats() Stats {
	st := Stats{
		Latency:           time.Duration(s.latency.Load()),
		SmoothedLatency:   time.Duration(s.smoothed.Load()),
		Guilds:            int(s.guildCount.Load()),
		Events:            s.events.Load(),
		Sequence:          s.seq.Load(),
		SequenceGaps:      s.gaps.Load(),
		ReconnectAttempts: int(s.attempts.Load()),
		Reconnects:        s.reconnects.Load(),
		Resumes:           s.resumes.Load(),
		Identifies:        s.identifies.Load(),
		Heartbeats:        s.heartbeats.Load(),
		Ticket:            s.ticket.Load(),
	}
	s.mu.Lock() // the state with its since, from one transition
	st.State, st.StateSince, st.SessionID, st.ResumeURL = State(s.state.Load()), s.since, s.sessionID, s.resumeURL
	st.LastCloseCode, st.LastCloseReason, st.LastCloseAt = s.lastCode, s.lastReason, s.lastAt
	st.RetryAt = s.retryAt
	st.LastError, st.LastErrorAt = s.lastErr, s.lastErrAt
	s.mu.Unlock()
	return st
}

func (s *Shard) validate() error {
	c := &s.cfg
	switch {
	case s.count < 1 || s.id < 0 || s.id >= s.count:
		return fmt.Errorf("gateway: shard %d: invalid shard [%d, %d]", s.id, s.id, s.count)
	case s.token.Reveal() == "":
		return fmt.Errorf("gateway: shard %d: empty token", s.id)
	case !c.compression.valid():
		return fmt.Errorf("gateway: shard %d: option compression: unknown value %q", s.id, c.compression)
	case c.presence != nil && !json.Valid(c.presence):
		return fmt.Errorf("gateway: shard %d: option presence: not valid JSON", s.id)
	}
	if _, err := gatewayURL(c.url, c.compression); err != nil {
		return fmt.Errorf("gateway: shard %d: option url: %w", s.id, err)
	}
	if _, err := s.identifyPayload(); err != nil {
		return fmt.Errorf("gateway: shard %d: identify payload: %w", s.id, err)
	}
	return nil
}

// Start starts the run loop in the background. It returns ErrAlreadyStarted
// if it runs, ErrClosed after Close/End, or a configuration error.
func (s *Shard) Start() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.stopping {
		return ErrClosed
	}
	if s.started {
		return ErrAlreadyStarted
	}
	if err := s.validate(); err != nil {
		return err
	}
	if _, _, resume := s.hasSession(); !resume {
		// The place in the identify order is taken now, in the order
		// shards are started, whatever order their goroutines run in.
		t, err := s.gate.Enqueue(s.id)
		if err != nil {
			return fmt.Errorf("gateway: shard %d: identify gate: %w", s.id, err)
		}
		s.ticket.Store(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.started, s.cancel = true, cancel
	go s.run(ctx)
	return nil
}

// Open starts the shard if needed and waits until it is Ready (nil), Failed
// (the failure, e.g. a *CloseError), Closed (ErrClosed) or ctx ends
// (ctx.Err(); the shard keeps running).
func (s *Shard) Open(ctx context.Context) error {
	if err := s.Start(); err != nil && !errors.Is(err, ErrAlreadyStarted) {
		return err
	}
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		switch s.State() {
		case StateReady:
			return nil
		case StateFailed:
			s.lifeMu.Lock()
			err := s.runErr
			s.lifeMu.Unlock()
			return err
		case StateClosed:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close closes the connection keeping the session resumable (close code
// 4000), stops the loop and returns the session to persist. No goroutine of
// the shard survives it. It is idempotent; if ctx ends first it returns
// ctx.Err() and the loop finishes in the background.
func (s *Shard) Close(ctx context.Context) (Session, error) {
	if err := s.stop(ctx, resumableCloseCode); err != nil {
		return s.Session(), err
	}
	return s.Session(), nil
}

// End closes the connection with 1000, which ends the session for good
// (the bot goes offline), stops the loop and forgets the session.
//
// After a Close that has already begun (say one whose ctx ended), End
// upgrades the close to 1000 if the close frame has not gone out yet. If
// it has (the connection closed with 4000, or was already gone), End cannot
// end the session: it waits for the loop like Close, keeps the session (so
// it can still be resumed, or persisted) and returns an error wrapping
// ErrSessionKept. If ctx ends first End returns ctx.Err(); the loop goes on
// and, the close being 1000, forgets the session when it finishes.
func (s *Shard) End(ctx context.Context) error {
	err := s.stop(ctx, websocket.CloseNormalClosure)
	if err == nil {
		s.dropSession()
	}
	return err
}

// stop asks the run loop to stop with close code code and waits for it. A
// later stop with 1000 upgrades an earlier one's code while that code is not
// committed yet (see commitCloseCode).
func (s *Shard) stop(ctx context.Context, code int) error {
	var closeNow, kept bool
	s.lifeMu.Lock()
	switch {
	case !s.stopping:
		s.stopping, s.stopCode = true, code
		if s.started {
			s.cancel()
		} else {
			s.codeCommitted = true // nothing to close: the code is final
			closeNow = true
		}
	case code == websocket.CloseNormalClosure && s.stopCode != code:
		if !s.codeCommitted {
			s.stopCode = code // the close frame has not gone out: send 1000
		} else {
			kept = true
		}
	}
	s.lifeMu.Unlock()
	if closeNow {
		// Outside lifeMu: the state handler may call Start, Open, Stats...
		// Other stop callers wait on done, which closes after it.
		s.transition(StateClosed, "closed before start", 0, nil)
		close(s.done)
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("gateway: shard %d: close: %w", s.id, ctx.Err())
	}
	if kept {
		if _, _, ok := s.hasSession(); ok {
			return fmt.Errorf("gateway: shard %d: end: %w", s.id, ErrSessionKept)
		}
	}
	return nil
}

// commitCloseCode returns the close code of a Close/End and fixes it: the
// caller sends it (or the loop ends with it) now, so End can no longer
// change it.
func (s *Shard) commitCloseCode() int {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.codeCommitted = true
	return s.stopCode
}

// Send writes payload (one JSON gateway payload, e.g. op 3 presence
// update) on the shard's connection, keeping to the send limit. It waits
// until the shard is Ready and the limit allows (bounded by ctx), then
// returns once the payload is written. Presence updates (op 3) also keep
// to the presence limit (WithPresenceLimit, 5 per 20 s by default) and wait
// for it the same way. A connection that ends while Send waits is not an
// error: Send waits for the next one.
//
// It refuses, before anything is sent, payloads over 4096 bytes
// (ErrPayloadTooLarge), invalid JSON (ErrInvalidJSON), and the ops the shard sends itself
// (heartbeat 1, identify 2, resume 6: an error wrapping ErrReservedOp, as
// an Identify sent here would bypass the identify gate and the daily
// budget); it returns ErrClosed once the shard has stopped, and
// ErrConnectionLost if the connection failed while the payload was
// being written (it may or may not have reached Discord).
//
// See TrySend for a Send that does not wait.
func (s *Shard) Send(ctx context.Context, payload []byte) error {
	presence, err := s.checkPayload(payload)
	if err != nil {
		return err
	}
	for {
		s.mu.Lock()
		changed := s.changed // before the attempt: a transition after it wakes the wait
		s.mu.Unlock()
		err := s.sendNow(payload, presence)
		var wait time.Duration
		var rl *RateLimitError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &rl):
			wait = rl.RetryAfter
		case errors.Is(err, ErrNotReady):
			wait = -1 // until the next transition
		default:
			return err
		}
		if err := s.waitSend(ctx, wait, changed); err != nil {
			return err
		}
	}
}

// TrySend is Send that never waits for the shard or its limits: it writes
// payload now if it can and returns once it is written; otherwise it
// returns at once, having sent nothing. What a caller (say a worker sending
// a command) can do next follows from the error:
//
//   - nil: written.
//   - a *RateLimitError (errors.Is ErrRateLimited): the send limit or, for
//     op 3, the presence limit is spent. Limit says which (LimitSend or
//     LimitPresence), RetryAfter how long until it allows the payload:
//     retry then.
//   - ErrNotReady, wrapped with the state: the shard has no live session
//     to send on (connecting, identifying, resuming, waiting to reconnect,
//     or not started). Retry once it is Ready: Open waits for that, and
//     Stats.RetryAt says when a reconnecting shard dials again.
//   - ErrClosed: the shard has stopped (Close, End or a fatal close) and
//     will not be Ready again.
//   - ErrPayloadTooLarge, ErrInvalidJSON or ErrReservedOp (wrapped): this
//     payload can never be sent; do not retry it.
//   - ErrConnectionLost: the connection failed during the write; the
//     payload may or may not have reached Discord.
//
// The write itself may wait for the socket, at most WithWriteTimeout.
func (s *Shard) TrySend(payload []byte) error {
	presence, err := s.checkPayload(payload)
	if err != nil {
		return err
	}
	return s.sendNow(payload, presence)
}

// checkPayload refuses what may never be sent; it reports whether payload
// is a presence update (op 3).
func (s *Shard) checkPayload(payload []byte) (presence bool, err error) {
	if len(payload) > MaxPayloadSize {
		return false, ErrPayloadTooLarge
	}
	if !json.Valid(payload) {
		return false, fmt.Errorf("gateway: shard %d: send: %w", s.id, ErrInvalidJSON)
	}
	op := int64(-1)
	if raw, ok, err := objectField(payload, "op"); err == nil && ok {
		if v, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			op = v
		}
	}
	switch op {
	case opHeartbeat, opIdentify, opResume:
		return false, fmt.Errorf("gateway: shard %d: send op %d: %w", s.id, op, ErrReservedOp)
	}
	return op == opPresenceUpdate, nil
}

// sendNow is one attempt of Send and TrySend: write payload now or say why not.
func (s *Shard) sendNow(payload []byte, presence bool) error {
	c := s.live.Load()
	if c == nil {
		return s.notReady()
	}
	if !presence {
		return s.liveErr(c.sendUser(payload))
	}
	s.presenceMu.Lock()
	defer s.presenceMu.Unlock()
	if d := s.presence.wait(time.Since(s.created), s.cfg.presenceLimit); d > 0 {
		return &RateLimitError{RetryAfter: d, Limit: LimitPresence}
	}
	err := c.sendUser(payload)
	if err == nil {
		// Recorded once written: the limit holds on arrival.
		s.presence.record(time.Since(s.created))
	}
	return s.liveErr(err)
}

// liveErr turns a connection that ended under sendNow into not ready.
func (s *Shard) liveErr(err error) error {
	if errors.Is(err, errNotLive) {
		return s.notReady()
	}
	return err
}

// notReady is the error of a send with no live connection: ErrClosed once
// the shard has stopped, else ErrNotReady with the state.
func (s *Shard) notReady() error {
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	return fmt.Errorf("gateway: shard %d: send: %w (%s)", s.id, ErrNotReady, s.State())
}

// waitSend waits d (d < 0: no limit) or until the shard's state changes,
// whichever comes first; ctx.Err() or ErrClosed end the wait for good.
func (s *Shard) waitSend(ctx context.Context, d time.Duration, changed <-chan struct{}) error {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
	case <-changed:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
	return nil
}

// transition is the one place the state changes: it checks the state
// machine, records when, and tells the state handler.
func (s *Shard) transition(to State, reason string, code int, err error) {
	s.transMu.Lock()
	defer s.transMu.Unlock()
	from := s.State()
	if from == to {
		return
	}
	if !ValidTransition(from, to) {
		s.log.Error("illegal state transition", "from", from, "to", to, "reason", reason)
	}
	// Counters first: whoever sees the new state sees them up to date.
	switch to {
	case StateReady:
		s.attempts.Store(0)
	case StateReconnecting:
		s.reconnects.Add(1)
	}
	now := time.Now()
	s.mu.Lock()
	s.state.Store(uint32(to))
	s.since = now
	if to != StateReconnecting {
		s.retryAt = time.Time{}
	}
	if code != 0 {
		s.lastCode, s.lastReason, s.lastAt = code, reason, now
	}
	if err != nil {
		s.lastErr, s.lastErrAt = err.Error(), now
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	level := slog.LevelInfo
	switch {
	case s.cfg.onState != nil:
		// The handler's owner reports states (the manager publishes them as
		// events): said here too, every reconnect would be logged twice.
		level = slog.LevelDebug
	case err != nil:
		level = slog.LevelWarn
	}
	if s.log.Enabled(context.Background(), level) { // the attributes cost allocations
		attrs := []any{"from", from.String(), "to", to.String(), "reason", reason}
		if code != 0 {
			attrs = append(attrs, "close_code", code)
		}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		s.log.Log(context.Background(), level, "shard state", attrs...)
	}
	if h := s.cfg.onState; h != nil {
		h(StateChange{ShardID: s.id, ShardCount: s.count, From: from, To: to, Reason: reason, CloseCode: code, Err: err, At: now})
	}
}

func (s *Shard) setSession(id, url string) {
	s.mu.Lock()
	s.sessionID, s.resumeURL = id, url
	s.mu.Unlock()
}

func (s *Shard) dropSession() {
	s.mu.Lock()
	s.sessionID, s.resumeURL = "", ""
	s.seq.Store(0)
	s.mu.Unlock()
}

func (s *Shard) hasSession() (string, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionID, s.resumeURL, s.sessionID != ""
}

// lead is how long before its identify slot the shard dials.
func (s *Shard) lead() time.Duration {
	if s.cfg.identifyLead > 0 {
		return s.cfg.identifyLead
	}
	h := time.Duration(s.handshakeNS.Load())
	if h == 0 {
		return defaultLeadInitial
	}
	return min(max(time.Duration(float64(h)*leadFactor), leadMin), leadMax)
}

func (s *Shard) recordHandshake(d time.Duration) {
	old := s.handshakeNS.Load()
	if old == 0 {
		s.handshakeNS.Store(int64(d))
		return
	}
	s.handshakeNS.Store(int64(float64(old)*0.7 + float64(d)*0.3))
}

// backoff is the wait before attempt n (n >= 1): min + jitter x (min(max, min x 2^(n-1)) - min).
func (s *Shard) backoff(n int64) time.Duration {
	lo, hi := s.cfg.backoffMin, s.cfg.backoffMax
	upper := float64(lo) * math.Pow(2, float64(min(n-1, 40)))
	upper = min(upper, float64(hi))
	j := min(max(s.cfg.backoffJitter(), 0), 1)
	return lo + time.Duration(j*(upper-float64(lo)))
}

// connEnd is how a connection ended and what to do next.
type connEnd struct {
	action     CloseAction
	reason     string
	code       int  // close code received (remote) or sent (local)
	remote     bool // code came from Discord
	err        error
	stopped    bool          // Close/End
	waitBefore time.Duration // the wait before the next attempt (op 9 d=false), instead of the backoff
	dialFailed bool          // no websocket was established
}

// run is the shard's state machine loop: approach the gate, dial, run the
// connection, decide from how it ended, back off, repeat.
func (s *Shard) run(ctx context.Context) {
	defer close(s.done)
	var wait time.Duration
	for {
		if wait > 0 && !sleepCtx(ctx, wait) {
			s.finishStopped()
			return
		}
		if ctx.Err() != nil {
			s.finishStopped()
			return
		}
		sessID, resumeURL, resume := s.hasSession()
		var ticket uint64
		if !resume {
			s.transition(StateQueued, "waiting for an identify slot", 0, nil)
			var err error
			if ticket, err = s.takeTicket(); err == nil {
				err = s.gate.Approach(ctx, ticket, s.lead())
			}
			if err != nil {
				s.dropTicket()
				if ctx.Err() != nil {
					s.finishStopped()
					return
				}
				wait = s.backoff(s.attempts.Add(1))
				s.reconnectIn(wait, "identify gate refused: "+err.Error(), 0, err)
				continue
			}
			s.transition(StateConnecting, "identify slot near: dialing", 0, nil)
		} else {
			s.transition(StateConnecting, "dialing to resume", 0, nil)
		}
		if err := s.checkDialGuard(); err != nil {
			s.dropTicket()
			s.lifeMu.Lock()
			s.runErr = err
			s.lifeMu.Unlock()
			s.transition(StateFailed, err.Error(), 0, err)
			return
		}
		url := s.cfg.url
		viaResumeURL := resume && resumeURL != ""
		if viaResumeURL {
			url = resumeURL
		}
		end := s.connect(ctx, url, sessID, resume, ticket)
		s.ticket.Store(0) // spent: released by the connection, whatever its end
		if end.stopped || ctx.Err() != nil {
			s.finishStopped()
			return
		}
		if end.action.Fatal() {
			cerr := end.err
			if cerr == nil {
				cerr = &CloseError{Code: end.code, Reason: end.reason}
			}
			s.lifeMu.Lock()
			s.runErr = cerr
			s.lifeMu.Unlock()
			name, _ := CloseCodeInfo(end.code)
			s.transition(StateFailed, fmt.Sprintf("close %d %s: fatal", end.code, name), end.code, cerr)
			return
		}
		if viaResumeURL && s.giveUpResumeURL(resumeURL, end.dialFailed) {
			end.reason += fmt.Sprintf("; resume URL unreachable %d times: resuming through the gateway URL", maxResumeURLDialFails)
		}
		if end.action == ActionIdentify {
			s.dropSession()
		}
		n := s.attempts.Add(1) - 1 // attempts before this one since Ready
		wait = end.waitBefore
		if n > 0 && end.waitBefore == 0 {
			// An op 9's wait is Discord's advice on a connection that
			// worked: connection failures before it do not lengthen it.
			wait = s.backoff(n)
		}
		s.reconnectIn(wait, end.reason, end.code, end.err)
	}
}

// DialGuardError is a shard's dial refused by its WithDialGuard check.
type DialGuardError struct{ Err error }

// Error says that the shard may not connect, and why.
func (e *DialGuardError) Error() string { return "gateway: may not connect: " + e.Err.Error() }

// Unwrap returns the guard's error.
func (e *DialGuardError) Unwrap() error { return e.Err }

// checkDialGuard asks the dial guard, if any, whether the shard may connect.
func (s *Shard) checkDialGuard() error {
	if s.cfg.dialGuard == nil {
		return nil
	}
	if err := s.cfg.dialGuard(); err != nil {
		return &DialGuardError{Err: err}
	}
	return nil
}

// takeTicket returns the identify ticket the shard holds (Start took one),
// or takes a new one.
func (s *Shard) takeTicket() (uint64, error) {
	if t := s.ticket.Load(); t != 0 {
		return t, nil
	}
	t, err := s.gate.Enqueue(s.id)
	if err != nil {
		return 0, err
	}
	s.ticket.Store(t)
	return t, nil
}

// dropTicket gives up the ticket held, if any, without an identify.
func (s *Shard) dropTicket() {
	if t := s.ticket.Swap(0); t != 0 {
		s.gate.Release(t, false)
	}
}

// reconnectIn enters Reconnecting, recording when the next attempt starts
// so that Stats can show the countdown.
func (s *Shard) reconnectIn(wait time.Duration, reason string, code int, err error) {
	s.mu.Lock()
	s.retryAt = time.Time{}
	if wait > 0 {
		s.retryAt = time.Now().Add(wait)
	}
	s.mu.Unlock()
	s.transition(StateReconnecting, reason, code, err)
}

// giveUpResumeURL counts a connection through the resume URL url: after
// maxResumeURLDialFails dials in a row that failed, the session forgets
// url, so it resumes through the gateway URL (Discord accepts a resume
// there too; a stale or mistyped resume_url in the state file must not keep
// a shard offline). It reports whether it gave up now.
func (s *Shard) giveUpResumeURL(url string, dialFailed bool) bool {
	if !dialFailed {
		s.resumeDialFails = 0
		return false
	}
	s.resumeDialFails++
	if s.resumeDialFails < maxResumeURLDialFails {
		return false
	}
	s.resumeDialFails = 0
	s.mu.Lock()
	gaveUp := s.resumeURL == url
	if gaveUp {
		s.resumeURL = ""
	}
	s.mu.Unlock()
	if gaveUp {
		s.log.Warn("resume URL unreachable: resuming through the gateway URL", "dials", maxResumeURLDialFails)
	}
	return gaveUp
}

// finishStopped ends the loop after Close or End. When a connection was
// up, the close code it went out with is the shard's last close, as a
// remote one would be; a shard stopped while queued or waiting to
// reconnect closed nothing.
func (s *Shard) finishStopped() {
	s.dropTicket() // stopped before its turn (Start took it)
	code := s.commitCloseCode()
	wire := code
	switch s.State() {
	case StateIdle, StateQueued, StateReconnecting:
		wire = 0
	}
	_, _, hasSession := s.hasSession()
	switch {
	case code == websocket.CloseNormalClosure:
		s.dropSession()
		s.transition(StateClosed, "ended: session ended", wire, nil)
	case hasSession:
		s.transition(StateClosed, "closed: session kept resumable", wire, nil)
	default:
		s.transition(StateClosed, "closed: no session yet", wire, nil)
	}
}

func (s *Shard) identifyPayload() ([]byte, error) {
	type props struct {
		OS      string `json:"os"`
		Browser string `json:"browser"`
		Device  string `json:"device"`
	}
	type data struct {
		Token          string          `json:"token"`
		Intents        int64           `json:"intents"`
		Properties     props           `json:"properties"`
		Shard          [2]int          `json:"shard"`
		LargeThreshold int             `json:"large_threshold"`
		Presence       json.RawMessage `json:"presence,omitempty"`
	}
	b, err := json.Marshal(struct {
		Op int  `json:"op"`
		D  data `json:"d"`
	}{2, data{
		Token: s.token.Reveal(), Intents: s.cfg.intents,
		Properties: props{s.cfg.osName, s.cfg.browser, s.cfg.device},
		Shard:      [2]int{s.id, s.count}, LargeThreshold: s.cfg.largeThreshold, Presence: s.cfg.presence,
	}})
	if err != nil {
		return nil, errors.New("cannot encode identify") // never wrap: the message could quote the payload
	}
	if len(b) > MaxPayloadSize {
		return nil, ErrPayloadTooLarge
	}
	return b, nil
}

func (s *Shard) resumePayload(sessionID string, seq int64) ([]byte, error) {
	b, err := json.Marshal(struct {
		Op int `json:"op"`
		D  struct {
			Token     string `json:"token"`
			SessionID string `json:"session_id"`
			Seq       int64  `json:"seq"`
		} `json:"d"`
	}{Op: 6, D: struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
		Seq       int64  `json:"seq"`
	}{s.token.Reveal(), sessionID, seq}})
	if err != nil {
		return nil, errors.New("cannot encode resume")
	}
	return b, nil
}
