package discordsim

import (
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Server is a running simulator. Its methods are safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	httpSrv  *http.Server
	upgrader websocket.Upgrader
	addr     string   // listen address
	adv      string   // advertised HOST:PORT (Config.Advertise)
	origins  []string // Origin values of the simulator's own pages
	hello    []byte
	guilds   guildCache
	shards   liveShards // live connections per shard, overlaps (overlap.go)

	closeOnce sync.Once
	closing   chan struct{}
	wg        sync.WaitGroup // Serve, scheduler, every connection's goroutines

	eventRate atomic.Uint64 // float64 bits
	faultRate atomic.Uint64 // float64 bits
	msgSeq    atomic.Uint64 // low bits of message snowflakes

	dispatches atomic.Uint64
	payloads   atomic.Uint64
	opsIn      [maxOp + 1]atomic.Uint64 // client payloads by op code (known ones: knownOp)

	cmdMu sync.Mutex
	cmds  []Command // Commands

	mu         sync.Mutex
	closed     bool
	rng        *rand.Rand
	nextConnID uint64
	conns      map[*conn]struct{}
	sessions   map[string]*session
	buckets    map[int]*arrivals // bucket -> when its latest accepted identifies arrived
	// memberRequests: guild -> when its whole member list was last requested (op 8)
	memberRequests map[uint64]time.Time
	remaining      int
	resetAt        time.Time // zero: budget period not started
	st             Stats     // counters; maps copied out by Stats()
}

// maxOp is the highest gateway op code counted (31, Request Soundboard Sounds).
const maxOp = 31

// knownOp reports whether op is counted in Stats.PayloadsByOp: 0-11 and 31.
func knownOp(op int) bool { return op >= 0 && op <= 11 || op == 31 }

// Stats are the simulator's counters (a snapshot).
type Stats struct {
	Identifies            int            // accepted identifies (READY sent)
	IdentifiesByBucket    map[int]int    // accepted identifies by bucket (shard_id % max_concurrency)
	IdentifyViolations    int            // identifies less than IdentifyWindow after the previous accepted one of their bucket
	Resumes               int            // successful resumes (RESUMED sent)
	ResumesRejected       int            // resumes answered with op 9 d=false (unknown, ended or expired session)
	Replayed              int            // dispatches replayed during resumes
	Connections           int            // websocket connections accepted, total
	ActiveConnections     int            // websocket connections open now
	ActiveSessions        int            // sessions that exist now (attached or resumable)
	SessionStartRemaining int            // identifies left in the current budget period
	Closes                map[int]int    // close codes the server sent, by code
	ClientCloses          map[int]int    // close codes clients sent, by code
	Dispatches            uint64         // dispatches produced (sent, queued for a detached session, or swallowed by a zombie)
	HeartbeatsReceived    uint64         // op 1 payloads from clients
	PayloadsReceived      uint64         // every payload from clients
	PayloadsByOp          map[int]uint64 // client payloads with a known op code (0-11 and 31), by op; ops never received are absent
	Faults                map[string]int // faults injected (on demand and random), by kind
	SlowClientDrops       int            // connections dropped because the client stopped reading (command queue full)
	ShardOverlaps         int            // times two sessions of one shard were live at once (Server.ShardOverlaps)
	MaxLivePerShard       int            // most connections live at once for one shard (Server.MaxLivePerShard)
	Overlaps              []Overlap      // the first overlaps (at most 100), oldest first; null if none
}

// SessionInfo describes one live session (Server.Sessions).
type SessionInfo struct {
	ID         string
	ShardID    int
	ShardCount int
	Seq        int64 // last seq given out
	Connected  bool  // attached to an open connection
}

// Start listens on cfg.Addr, serves in the background and returns once the
// listener is ready.
func Start(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	advHost, advPort, err := parseAdvertise(cfg.Advertise)
	if err != nil {
		return nil, &ConfigError{Field: "Advertise", Value: cfg.Advertise, Err: err}
	}
	listenHost, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, &ConfigError{Field: "Addr", Value: cfg.Addr, Err: fmt.Errorf("must be HOST:PORT: %w", err)}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("discordsim: listen on %s: %w", cfg.Addr, err)
	}
	// Judged on the address really listened on: a name may resolve to anything.
	bound := ln.Addr().(*net.TCPAddr)
	if !bound.IP.IsLoopback() && cfg.ControlToken == "" {
		_ = ln.Close()
		return nil, &ConfigError{Field: "Addr", Value: cfg.Addr, Err: ErrControlTokenRequired}
	}
	if advHost == "" {
		advHost = listenHost
		if isWildcard(listenHost) {
			// From what was asked: Go may bind 0.0.0.0 dual-stack, as [::].
			advHost = wildcardHost(net.ParseIP(listenHost).To4() != nil)
		}
	}
	if advPort == "" {
		advPort = strconv.Itoa(bound.Port)
	}
	s := &Server{
		cfg:            cfg,
		log:            cfg.Logger.With("component", "discordsim"),
		ln:             ln,
		addr:           ln.Addr().String(),
		adv:            net.JoinHostPort(advHost, advPort),
		hello:          helloFrame(cfg.HeartbeatInterval),
		closing:        make(chan struct{}),
		rng:            rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)>>1|1)),
		conns:          make(map[*conn]struct{}),
		sessions:       make(map[string]*session),
		buckets:        make(map[int]*arrivals),
		memberRequests: make(map[uint64]time.Time),
		remaining:      cfg.SessionStartTotal,
		st:             Stats{IdentifiesByBucket: map[int]int{}, Closes: map[int]int{}, ClientCloses: map[int]int{}, Faults: map[string]int{}},
	}
	s.origins = ownOrigins(s.adv, s.addr)
	s.eventRate.Store(math.Float64bits(cfg.EventRate))
	s.faultRate.Store(math.Float64bits(cfg.FaultRate))
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 16 << 10,
		CheckOrigin:     func(*http.Request) bool { return true },
	}
	mux := http.NewServeMux()
	// control routes a control endpoint through the Origin and token checks.
	control := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.control(h)) }
	mux.HandleFunc("GET /api/v10/gateway/bot", s.handleGatewayBot)
	mux.HandleFunc("GET /api/v10/gateway", s.handleGatewayInfo)
	mux.HandleFunc("GET /api/v10/users/@me", s.handleCurrentUser)
	// "{url}/?v=10..." makes the path "/gateway/": serve both spellings.
	for _, p := range []string{"/gateway", "/gateway/", "/gateway-resume", "/gateway-resume/"} {
		mux.HandleFunc("GET "+p, s.handleWS)
	}
	control("POST /_sim/close", s.simHandler(func(q *simQuery) func() int {
		shard, code := q.shard(), q.closeCode("code")
		return func() int { return s.CloseShard(shard, code) }
	}))
	control("POST /_sim/reconnect", s.simHandler(func(q *simQuery) func() int {
		shard := q.shard()
		return func() int { return s.Reconnect(shard) }
	}))
	control("POST /_sim/invalidate", s.simHandler(func(q *simQuery) func() int {
		shard, resumable := q.shard(), q.bool("resumable")
		return func() int { return s.InvalidateSession(shard, resumable) }
	}))
	control("POST /_sim/zombie", s.simHandler(func(q *simQuery) func() int {
		shard := q.shard()
		return func() int { return s.Zombie(shard) }
	}))
	control("POST /_sim/drop", s.simHandler(func(q *simQuery) func() int {
		shard := q.shard()
		return func() int { return s.DropTCP(shard) }
	}))
	control("POST /_sim/heartbeat", s.simHandler(func(q *simQuery) func() int {
		shard := q.shard()
		return func() int { return s.RequestHeartbeat(shard) }
	}))
	control("POST /_sim/burst", s.simHandler(func(q *simQuery) func() int {
		shard, n := q.shard(), q.intIn("n", 1, MaxBurst)
		return func() int { return s.Burst(shard, n) }
	}))
	control("POST /_sim/rate", s.simHandler(func(q *simQuery) func() int {
		rate := q.rate("per_shard", MaxEventRate)
		return func() int { s.SetEventRate(rate); return 0 }
	}))
	control("POST /_sim/faults", s.simHandler(func(q *simQuery) func() int {
		rate := q.rate("per_conn", MaxFaultRate)
		return func() int { s.SetFaultRate(rate); return 0 }
	}))
	control("GET /_sim/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) })
	control("GET /_sim/sessions", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Sessions()) })
	s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}

	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = s.httpSrv.Serve(batchListener{Listener: ln, timeout: cfg.WriteTimeout})
	}()
	go func() {
		defer s.wg.Done()
		s.schedule()
	}()
	s.log.Debug("started", "addr", s.addr, "advertise", s.adv, "config", cfg)
	return s, nil
}

// Close closes the listener and every connection and waits until every
// goroutine of the server has ended. Sessions are dropped. It is idempotent.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		close(s.closing)
		err = s.httpSrv.Close()
		for _, c := range conns {
			c.dropTCP()
		}
		s.wg.Wait()
	})
	return err
}

// Addr is the listen address, host:port.
func (s *Server) Addr() string { return s.addr }

// AdvertisedAddr is the host:port the server's URLs carry (Config.Advertise).
func (s *Server) AdvertisedAddr() string { return s.adv }

// APIURL is the REST base, "http://ADVERTISED/api/v10".
func (s *Server) APIURL() string { return "http://" + s.adv + "/api/v10" }

// GatewayURL is the gateway URL /gateway/bot answers, "ws://ADVERTISED/gateway".
func (s *Server) GatewayURL() string { return "ws://" + s.adv + "/gateway" }

// ResumeURL is the resume_gateway_url READY carries, "ws://ADVERTISED/gateway-resume".
func (s *Server) ResumeURL() string { return "ws://" + s.adv + "/gateway-resume" }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	now := time.Now()
	s.mu.Lock()
	st := s.st
	st.IdentifiesByBucket = copyMap(s.st.IdentifiesByBucket)
	st.Closes = copyMap(s.st.Closes)
	st.ClientCloses = copyMap(s.st.ClientCloses)
	st.Faults = copyMap(s.st.Faults)
	st.ActiveConnections = len(s.conns)
	st.SessionStartRemaining = s.budgetLocked(now)
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.mu.Lock()
		if !ss.expiredLocked(now, s.cfg.SessionTTL) {
			st.ActiveSessions++
		}
		ss.mu.Unlock()
	}
	st.Dispatches = s.dispatches.Load()
	st.PayloadsReceived = s.payloads.Load()
	st.PayloadsByOp = make(map[int]uint64)
	for op := range s.opsIn {
		if n := s.opsIn[op].Load(); n > 0 {
			st.PayloadsByOp[op] = n
		}
	}
	st.HeartbeatsReceived = st.PayloadsByOp[1]
	st.ShardOverlaps, st.MaxLivePerShard, st.Overlaps = s.shards.snapshot()
	return st
}

// Sessions lists the sessions that exist now (attached or still resumable).
func (s *Server) Sessions() []SessionInfo {
	now := time.Now()
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	out := make([]SessionInfo, 0, len(sessions))
	for _, ss := range sessions {
		ss.mu.Lock()
		if !ss.expiredLocked(now, s.cfg.SessionTTL) {
			out = append(out, SessionInfo{ID: ss.id, ShardID: ss.shardID, ShardCount: ss.shardCount,
				Seq: ss.seq, Connected: ss.conn != nil})
		}
		ss.mu.Unlock()
	}
	return out
}

func copyMap[K comparable](m map[K]int) map[K]int {
	out := make(map[K]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// budgetLocked applies a due budget reset and returns what remains.
func (s *Server) budgetLocked(now time.Time) int {
	if !s.resetAt.IsZero() && !now.Before(s.resetAt) {
		s.remaining = s.cfg.SessionStartTotal
		s.resetAt = time.Time{}
	}
	return s.remaining
}

// ---- faults and traffic on demand ----

// targets are the open connections whose live session is shard id (any count).
func (s *Server) targets(shard int) []*conn {
	s.mu.Lock()
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	out := all[:0]
	for _, c := range all {
		if c.isShard(shard) {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) countFault(kind string, n int) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.st.Faults[kind] += n
	s.mu.Unlock()
}

// CloseShard sends a close frame with code (and Discord's reason text) to
// every connection of shard, then closes TCP once the client answers or
// CloseGrace passes. It returns how many connections it hit. It panics if
// code cannot be carried by a close frame (see ValidCloseCode): the frame
// holds 16 bits, and a truncated or reserved code is a bug in the caller.
func (s *Server) CloseShard(shard int, code int) int {
	if !ValidCloseCode(code) {
		panic(fmt.Sprintf("discordsim: CloseShard(%d, %d): not a close code a websocket may carry", shard, code))
	}
	ts := s.targets(shard)
	s.countFault("close-"+strconv.Itoa(code), len(ts))
	for _, c := range ts {
		c.closeWith(code, closeReason(code))
	}
	return len(ts)
}

// Reconnect sends op 7 to every connection of shard.
func (s *Server) Reconnect(shard int) int {
	ts := s.targets(shard)
	s.countFault(FaultReconnect.String(), len(ts))
	for _, c := range ts {
		c.sendFrame(frameReconnect)
	}
	return len(ts)
}

// InvalidateSession sends op 9 with d=resumable to every connection of
// shard. Not resumable: the session ends at once and the connection is no
// longer authenticated (the client may identify on it again).
func (s *Server) InvalidateSession(shard int, resumable bool) int {
	ts := s.targets(shard)
	kind := FaultInvalidFresh
	if resumable {
		kind = FaultInvalidResumable
	}
	s.countFault(kind.String(), len(ts))
	for _, c := range ts {
		if resumable {
			c.sendFrame(frameInvalidTrue)
		} else {
			c.invalidate()
			c.sendFrame(frameInvalidFalse)
		}
	}
	return len(ts)
}

// Zombie makes every connection of shard stop sending anything (dispatches
// and heartbeat ACKs alike) while TCP stays open. Dispatches keep being
// numbered into the session's replay buffer, as if lost in flight, so the
// client's resume replays them. Close frames the server sends are still sent.
func (s *Server) Zombie(shard int) int {
	ts := s.targets(shard)
	s.countFault(FaultZombie.String(), len(ts))
	for _, c := range ts {
		c.zombie.Store(true)
	}
	return len(ts)
}

// WithholdACKs makes every connection of shard stop answering heartbeats
// with op 11 while everything else (dispatches, op 1 requests) keeps
// flowing: a half-dead connection the client must find by its missing ACKs.
func (s *Server) WithholdACKs(shard int) int {
	ts := s.targets(shard)
	s.countFault("withhold-acks", len(ts))
	for _, c := range ts {
		c.noACK.Store(true)
	}
	return len(ts)
}

// DropTCP closes the TCP connection of every connection of shard with no
// close frame. The sessions stay resumable.
func (s *Server) DropTCP(shard int) int {
	ts := s.targets(shard)
	s.countFault(FaultDropTCP.String(), len(ts))
	for _, c := range ts {
		c.dropTCP()
	}
	return len(ts)
}

// RequestHeartbeat sends op 1 to every connection of shard; the client must
// answer with a heartbeat at once.
func (s *Server) RequestHeartbeat(shard int) int {
	ts := s.targets(shard)
	s.countFault("request-heartbeat", len(ts))
	for _, c := range ts {
		c.sendFrame(frameHeartbeat)
	}
	return len(ts)
}

// SetEventRate sets MESSAGE_CREATE dispatches per second per READY session.
// 0 stops the traffic. The rate is clamped to 0..MaxEventRate (NaN is 0).
func (s *Server) SetEventRate(perShard float64) {
	s.eventRate.Store(math.Float64bits(clampRate(perShard, MaxEventRate)))
}

// SetFaultRate changes Config.FaultRate: random faults per second per
// identified connection (0 stops them). The rate is clamped to
// 0..MaxFaultRate (NaN is 0).
func (s *Server) SetFaultRate(perConn float64) {
	s.faultRate.Store(math.Float64bits(clampRate(perConn, MaxFaultRate)))
}

func clampRate(v, limit float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return min(max(v, 0), limit)
}

// Burst sends n MESSAGE_CREATE dispatches as fast as the connection takes
// them to every connection of shard, without blocking the caller or other
// connections. It returns how many connections it hit.
//
// Each connection prepares the burst before sending it: up to 65536
// dispatches (or 32 MiB of frames) at a time are numbered, rendered and, on a
// compressed connection, compressed on its stream context, then written back
// to back while the next chunk is prepared. So compression delays the start of
// a burst instead of pacing it. A heartbeat or other command arriving
// meanwhile cuts the chunk short and is answered right after it. If the
// session leaves its connection before the burst is numbered (the client
// closes resumable, or the connection drops), the rest is the session's:
// the connection that resumes it sends it after the replay and RESUMED, as
// Discord keeps a session's events while its client is away.
func (s *Server) Burst(shard int, n int) int {
	if n <= 0 {
		return 0
	}
	ts := s.targets(shard)
	for _, c := range ts {
		addSaturating(&c.burst, int64(n))
		c.notify()
	}
	return len(ts)
}

// addSaturating adds n > 0 to v, stopping at math.MaxInt64: bursts that
// pile up must not wrap to a negative count (which sends nothing).
func addSaturating(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		sum := old + n
		if sum < old {
			sum = math.MaxInt64
		}
		if v.CompareAndSwap(old, sum) {
			return
		}
	}
}

// ---- HTTP ----

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// simQuery reads the parameters of one control request. The first problem
// found is kept in err; a parameter given twice, or one the endpoint does
// not take, is a problem too (a typo must not pass for a default).
type simQuery struct {
	vals url.Values
	used map[string]bool
	err  error
}

func newSimQuery(r *http.Request) *simQuery {
	q := &simQuery{used: map[string]bool{}}
	q.vals, q.err = url.ParseQuery(r.URL.RawQuery)
	if q.err != nil {
		q.err = fmt.Errorf("query %q: %w", r.URL.RawQuery, q.err)
	}
	return q
}

func (q *simQuery) fail(key, v string, err error) {
	if q.err == nil {
		q.err = fmt.Errorf("query %s=%q: %w", key, v, err)
	}
}

// get is the one value of key ("" and an error if missing or repeated).
func (q *simQuery) get(key string) (string, bool) {
	q.used[key] = true
	vs := q.vals[key]
	switch {
	case len(vs) == 0:
		if q.err == nil {
			q.err = fmt.Errorf("query %s: missing", key)
		}
		return "", false
	case len(vs) > 1:
		if q.err == nil {
			q.err = fmt.Errorf("query %s: given %d times", key, len(vs))
		}
		return "", false
	}
	return vs[0], true
}

// intIn is key as an integer from lo to hi.
func (q *simQuery) intIn(key string, lo, hi int) int {
	s, ok := q.get(key)
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(s)
	if err == nil && (v < lo || v > hi) {
		err = fmt.Errorf("must be from %d to %d", lo, hi)
	}
	if err != nil {
		q.fail(key, s, err)
	}
	return v
}

// shard is a shard ID: any non-negative integer an identify may carry.
func (q *simQuery) shard() int { return q.intIn("shard", 0, math.MaxInt) }

func (q *simQuery) closeCode(key string) int {
	s, ok := q.get(key)
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(s)
	if err == nil && !ValidCloseCode(v) {
		err = errors.New("not a close code a websocket may carry (1000-1003, 1007-1013 or 3000-4999)")
	}
	if err != nil {
		q.fail(key, s, err)
	}
	return v
}

func (q *simQuery) bool(key string) bool {
	s, ok := q.get(key)
	if !ok {
		return false
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		q.fail(key, s, err)
	}
	return v
}

// rate is key as a finite number from 0 to limit.
func (q *simQuery) rate(key string, limit float64) float64 {
	s, ok := q.get(key)
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err == nil {
		err = checkRate(v, limit)
	}
	if err != nil {
		q.fail(key, s, err)
	}
	return v
}

// unknown reports the first parameter the endpoint did not read.
func (q *simQuery) unknown() {
	if q.err != nil {
		return
	}
	for key := range q.vals {
		if !q.used[key] {
			q.err = fmt.Errorf("query %s: not a parameter of this endpoint", key)
			return
		}
	}
}

// simHandler parses the query first and acts only if every parameter is
// valid: bad input is a 400 naming the parameter, and acts on nothing.
func (s *Server) simHandler(parse func(q *simQuery) func() int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := newSimQuery(r)
		act := parse(q)
		q.unknown()
		if q.err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": q.err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"hit": act()})
	}
}

// ownOrigins are the Origin values a page served from one of hostports
// would send (a browser leaves out port 80).
func ownOrigins(hostports ...string) []string {
	var out []string
	for _, hp := range hostports {
		out = append(out, "http://"+hp)
		if bare, ok := strings.CutSuffix(hp, ":80"); ok {
			out = append(out, "http://"+bare)
		}
	}
	return out
}

// control guards the control endpoints. A request with an Origin that is
// not the simulator's own gets a 403: a web page can send a POST with a
// query string to any address (no preflight), but its browser always says
// where it comes from; curl and bots send no Origin. Then, with a
// ControlToken, a request without "Authorization: Bearer TOKEN" gets a 401.
func (s *Server) control(next http.Handler) http.Handler {
	want := []byte("Bearer " + s.cfg.ControlToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origins := r.Header.Values("Origin"); len(origins) > 0 && !(len(origins) == 1 && s.ownOrigin(origins[0])) {
			writeJSON(w, http.StatusForbidden, map[string]string{
				"error": fmt.Sprintf("Origin %q is not this simulator's (%s): control requests from web pages are refused", strings.Join(origins, ", "), s.origins[0])})
			return
		}
		if s.cfg.ControlToken != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="discordsim control"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "the control endpoints need Authorization: Bearer <control token>"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) ownOrigin(origin string) bool {
	for _, o := range s.origins {
		if strings.EqualFold(origin, o) {
			return true
		}
	}
	return false
}

func (s *Server) authorized(r *http.Request) bool {
	return r.Header.Get("Authorization") == "Bot "+s.cfg.Token
}

func unauthorized(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "401: Unauthorized", "code": 0})
}

// handleCurrentUser answers GET /users/@me with the bot user (READY's user).
func (s *Server) handleCurrentUser(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		unauthorized(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, botUserJSON)
}

func (s *Server) handleGatewayBot(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		unauthorized(w)
		return
	}
	now := time.Now()
	s.mu.Lock()
	remaining := s.budgetLocked(now)
	resetAfter := s.cfg.SessionStartResetAfter
	if !s.resetAt.IsZero() {
		resetAfter = s.resetAt.Sub(now)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"url":    s.GatewayURL(),
		"shards": s.cfg.Shards,
		"session_start_limit": map[string]any{
			"total":           s.cfg.SessionStartTotal,
			"remaining":       remaining,
			"reset_after":     resetAfter.Milliseconds(),
			"max_concurrency": s.cfg.MaxConcurrency,
		},
	})
}

func (s *Server) handleGatewayInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"url": s.GatewayURL()})
}

// newSessionID returns 32 random hex digits.
func (s *Server) newSessionIDLocked() string {
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		v := s.rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}
