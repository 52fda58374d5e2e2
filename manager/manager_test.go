package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/internal/syncbuf"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/store"
)

var _ Store = (*store.File)(nil)

func TestNewValidatesOptions(t *testing.T) {
	cases := []struct {
		name string
		opts []Option
		want string
	}{
		{"split count", []Option{WithSplitCount(1)}, "WithSplitCount"},
		{"shard count", []Option{WithShardCount(-1)}, "WithShardCount"},
		{"shard ids", []Option{WithShardCount(4), WithShardIDs(1, 4)}, "WithShardIDs"},
		{"dup ids", []Option{WithShardIDs(1, 1)}, "WithShardIDs"},
		{"window", []Option{WithIdentifyWindow(-time.Second)}, "WithIdentifyWindow"},
		{"api url", []Option{WithAPIURL("")}, "WithAPIURL"},
		// Bounds: no value may allocate gigabytes or panic in make.
		{"huge shard count", []Option{WithShardCount(math.MaxInt)}, "WithShardCount"},
		{"shard count over the bound", []Option{WithShardCount(store.MaxShardCount + 1)}, "WithShardCount"},
		{"huge shard id", []Option{WithShardIDs(math.MaxInt)}, "WithShardIDs"},
		{"huge max_concurrency", []Option{WithMaxConcurrency(1 << 40)}, "WithMaxConcurrency"},
	}
	for _, c := range cases {
		_, err := New("tok", c.opts...)
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrInvalidOption naming %s", c.name, err, c.want)
		}
	}
	if _, err := New(""); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("empty token: got %v", err)
	}
}

// A /gateway/bot answer beyond the bounds is refused before anything is
// allocated for it, and so are a split or re-shard beyond them.
func TestBoundsOnDiscordsAnswerAndActions(t *testing.T) {
	cfg := simConfig()
	cfg.Shards = store.MaxShardCount + 1
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	if err := m.Open(ctxT(t, 5*time.Second)); err == nil || !strings.Contains(err.Error(), "shards = 65537") {
		t.Fatalf("Open with /gateway/bot answering 65537 shards: %v, want an error naming it", err)
	}
	if n := sim.Stats().Connections; n != 0 {
		t.Fatalf("%d gateway connections", n)
	}

	cfg = simConfig()
	cfg.Shards = 2
	sim = startSim(t, cfg)
	m = newTestManager(t, sim, cfg.IdentifyWindow)
	openReady(t, m)
	ctx := ctxT(t, 5*time.Second)
	if err := m.SplitShard(ctx, 0, math.MaxInt); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("SplitShard into MaxInt: %v, want ErrInvalidOption", err)
	}
	if err := m.SplitShard(ctx, 0, 2); err != nil { // the claim was given back
		t.Fatalf("SplitShard after a refused one: %v", err)
	}
	if err := m.Reshard(ctx, store.MaxShardCount+1); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("Reshard(%d): %v, want ErrInvalidOption", store.MaxShardCount+1, err)
	}
}

func TestTokenNeverPrinted(t *testing.T) {
	m, err := New(testToken)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("%v", m), fmt.Sprintf("%+v", m), fmt.Sprintf("%#v", m), fmt.Sprintf("%v", m.token), fmt.Sprintf("%v", m.cfg)} {
		if strings.Contains(s, testToken) {
			t.Fatalf("token printed: %s", s)
		}
	}
}

func TestUnauthorized(t *testing.T) {
	sim := startSim(t, simConfig())
	m, err := New("wrong-token", WithAPIURL(sim.APIURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	err = m.Open(ctxT(t, 5*time.Second))
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Open with a bad token: %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "wrong-token") {
		t.Fatalf("error holds the token: %v", err)
	}
	if n := sim.Stats().Connections; n != 0 {
		t.Fatalf("%d gateway connections after a 401", n)
	}
}

// 32 shards at concurrency 4: all READY, no identify violation, the last
// grant within (ceil(N/C)-1) x (window+margin) + one handshake of Open, and
// in every bucket the last Identify within 7 x (window+margin) + margin of
// the first: timer lateness does not accumulate from slot to slot.
func TestStartup32AtConcurrency4(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency, cfg.IdentifyWindow = 32, 4, 40*time.Millisecond
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, 40*time.Millisecond)
	events, unsubscribe := m.Subscribe(256)
	defer unsubscribe()
	start := time.Now()
	openReady(t, m)
	ready := time.Since(start)
	// Identifying is entered right after the Identify is written.
	firstID, lastID := map[int]time.Time{}, map[int]time.Time{}
	for len(events) > 0 {
		ev := <-events
		if ev.Type != EventState || ev.To != gateway.StateIdentifying {
			continue
		}
		b := ev.Key.ID % 4
		if _, ok := firstID[b]; !ok {
			firstID[b] = ev.At
		}
		lastID[b] = ev.At
	}
	if len(firstID) != 4 {
		t.Fatalf("Identifying seen in %d buckets, want 4 (events dropped?)", len(firstID))
	}
	for b := range 4 {
		if got, want := lastID[b].Sub(firstID[b]), 7*(40*time.Millisecond+testMargin)+testMargin; got > want {
			t.Errorf("bucket %d: last Identify %v after the first, want <= %v", b, got, want)
		}
	}
	st := sim.Stats()
	if st.Identifies != 32 || st.IdentifyViolations != 0 {
		t.Fatalf("sim: %d identifies, %d violations; want 32, 0", st.Identifies, st.IdentifyViolations)
	}
	snap := m.Snapshot()
	if snap.Totals.Ready != 32 || snap.MaxConcurrency != 4 || snap.RecommendedShards != 32 {
		t.Fatalf("snapshot totals %+v conc %d rec %d", snap.Totals, snap.MaxConcurrency, snap.RecommendedShards)
	}
	var last time.Time
	for _, b := range snap.Limiter.Buckets {
		if b.LastGrant.After(last) {
			last = b.LastGrant
		}
	}
	slot := 40*time.Millisecond + testMargin
	bound := 7*slot + 250*time.Millisecond // + one handshake (dial, Hello, GET /gateway/bot) and scheduling on 2 cores with -race
	if got := last.Sub(start); got > bound {
		t.Fatalf("last grant %v after Open, bound %v", got, bound)
	}
	t.Logf("last grant %v after Open (bound %v; a READY quicker than the margin moves slots up), all READY after %v", last.Sub(start), bound, ready)
	if snap.BotUser.ID == "" {
		t.Fatalf("bot user not read from READY: %+v", snap.BotUser)
	}
}

func TestRestartResumesFromStateFile(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency, cfg.EventRate = 6, 2, 20
	sim := startSim(t, cfg)
	path := filepath.Join(t.TempDir(), "state.toml")

	f1 := openStore(t, path, store.WithFlushInterval(50*time.Millisecond))
	m1 := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f1))
	openReady(t, m1)
	if err := m1.Close(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f1.Close(); err != nil {
		t.Fatal(err)
	}
	before := sim.Stats()
	if before.Identifies != 6 {
		t.Fatalf("first start: %d identifies", before.Identifies)
	}
	if n := before.ClientCloses[1000]; n != 0 {
		t.Fatalf("Close ended %d sessions with 1000", n)
	}

	f2 := openStore(t, path)
	defer f2.Close()
	if n := len(f2.Load()); n != 6 {
		t.Fatalf("state file holds %d sessions, want 6", n)
	}
	for _, r := range f2.Load() {
		if r.Guilds == 0 {
			t.Fatalf("state file lost the guild count: %+v", r)
		}
	}
	m2 := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f2))
	ctx := ctxT(t, 20*time.Second)
	if err := m2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	// Known before any READY (and none comes: every shard resumes).
	if u := m2.Snapshot().BotUser; u.ID != wantBotID || u.Username != "shardtop-sim" {
		t.Fatalf("bot user after Open: %+v", u)
	}
	if err := m2.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	after := sim.Stats()
	if after.Identifies != before.Identifies {
		t.Fatalf("restart identified %d times, want 0", after.Identifies-before.Identifies)
	}
	if got := after.Resumes - before.Resumes; got != 6 {
		t.Fatalf("restart resumed %d shards, want 6", got)
	}
	checkRouting(t, m2, cfg.Guilds)
	if u := m2.Snapshot().BotUser; u.ID != wantBotID {
		t.Fatalf("bot user after resuming every shard: %+v", u)
	}
	for _, s := range m2.Snapshot().Shards {
		if s.SequenceGaps != 0 {
			t.Fatalf("shard %s: %d sequence gaps after resume", s.Key, s.SequenceGaps)
		}
	}
}

// wantBotID is the simulator's bot user ID.
const wantBotID = "1100000000000000001"

// apiProxy serves the sim's REST API, except that the routes in fail
// answer with the given status.
func apiProxy(t *testing.T, sim *discordsim.Server, fail map[string]int) string {
	t.Helper()
	target, err := url.Parse("http://" + sim.Addr())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{DisableKeepAlives: true}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, ok := fail[strings.TrimPrefix(r.URL.Path, "/api/v10")]; ok {
			http.Error(w, `{"message":"injected","code":0}`, code)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/api/v10"
}

func TestBotUserFromREST(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency = 2, 2
	sim := startSim(t, cfg)
	noREST := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

	t.Run("users/@me fails: logged, READY names the bot", func(t *testing.T) {
		m := newTestManager(t, sim, cfg.IdentifyWindow, WithAPIURL(apiProxy(t, sim, map[string]int{"/users/@me": 500})), WithHTTPClient(noREST))
		ctx := ctxT(t, 10*time.Second)
		if err := m.Open(ctx); err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := m.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 5*time.Second, "bot user from READY", func() bool { return m.Snapshot().BotUser.ID == wantBotID })
	})
	t.Run("users/@me 401 beside a working /gateway/bot: logged", func(t *testing.T) {
		m := newTestManager(t, sim, cfg.IdentifyWindow, WithAPIURL(apiProxy(t, sim, map[string]int{"/users/@me": 401})), WithHTTPClient(noREST))
		openReady(t, m)
	})
	t.Run("users/@me 401 and /gateway/bot down: ErrUnauthorized", func(t *testing.T) {
		conns := sim.Stats().Connections
		m := newTestManager(t, sim, cfg.IdentifyWindow, WithHTTPClient(noREST),
			WithAPIURL(apiProxy(t, sim, map[string]int{"/users/@me": 401, "/gateway/bot": 502})),
			WithShardCount(2), WithMaxConcurrency(2), WithGatewayURL(sim.GatewayURL()))
		err := m.Open(ctxT(t, 10*time.Second))
		var he *HTTPError
		if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &he) || he.Path != "/users/@me" || !strings.Contains(err.Error(), "/users/@me") {
			t.Fatalf("Open: %v, want ErrUnauthorized naming /users/@me", err)
		}
		if n := sim.Stats().Connections - conns; n != 0 {
			t.Fatalf("%d gateway connections after a 401", n)
		}
	})
	t.Run("only /gateway/bot down: runs with the given settings", func(t *testing.T) {
		m := newTestManager(t, sim, cfg.IdentifyWindow, WithHTTPClient(noREST),
			WithAPIURL(apiProxy(t, sim, map[string]int{"/gateway/bot": 502})),
			WithShardCount(2), WithMaxConcurrency(2), WithGatewayURL(sim.GatewayURL()))
		ctx := ctxT(t, 10*time.Second)
		if err := m.Open(ctx); err != nil {
			t.Fatalf("Open: %v", err)
		}
		if u := m.Snapshot().BotUser; u.ID != wantBotID {
			t.Fatalf("bot user after Open: %+v", u)
		}
		if err := m.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// Totals.Identifies and Totals.Resumes count over the manager's life: a
// restarted or split shard's counters are kept, so they match Discord's.
func TestTotalsCountReplacedShards(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency = 2, 2
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	openReady(t, m)
	ctx := ctxT(t, 20*time.Second)
	matchSim := func(what string, identifies, resumes uint64) {
		t.Helper()
		var tot Totals
		poll.Until(t, 5*time.Second, what, func() bool {
			tot = m.Snapshot().Totals
			return tot.Identifies == identifies && tot.Resumes == resumes
		})
		if st := sim.Stats(); uint64(st.Identifies) != tot.Identifies || uint64(st.Resumes) != tot.Resumes {
			t.Fatalf("%s: totals %d identifies, %d resumes; sim saw %d, %d", what, tot.Identifies, tot.Resumes, st.Identifies, st.Resumes)
		}
	}
	matchSim("first start", 2, 0)
	if err := m.RestartShard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	matchSim("restart (a new instance resumes)", 2, 1)
	if err := m.SplitShard(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	matchSim("split (the resumed instance retired)", 4, 1)
	if err := m.CloseShard(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.OpenShard(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	matchSim("close and open", 4, 2)
	if err := m.Reshard(ctx, 3); err != nil {
		t.Fatal(err)
	}
	matchSim("re-shard to 3", 7, 2)
}

func TestExpiredSessionFallsBackToIdentify(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency, cfg.SessionTTL = 4, 2, 50*time.Millisecond
	sim := startSim(t, cfg)
	path := filepath.Join(t.TempDir(), "state.toml")
	f1 := openStore(t, path)
	m1 := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f1))
	openReady(t, m1)
	if err := m1.Close(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	f1.Close()
	poll.Until(t, 5*time.Second, "sessions to expire", func() bool { return len(sim.Sessions()) == 0 })

	f2 := openStore(t, path)
	defer f2.Close()
	m2 := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f2))
	openReady(t, m2)
	st := sim.Stats()
	if st.ResumesRejected != 4 || st.Identifies != 8 || st.IdentifyViolations != 0 {
		t.Fatalf("rejected %d, identifies %d, violations %d; want 4, 8, 0", st.ResumesRejected, st.Identifies, st.IdentifyViolations)
	}
}

func TestSessionForOtherCountIsDeleted(t *testing.T) {
	cfg := simConfig()
	cfg.Shards = 2
	sim := startSim(t, cfg)
	path := filepath.Join(t.TempDir(), "state.toml")
	f := openStore(t, path)
	defer f.Close()
	if err := f.Put(store.ShardState{ShardID: 1, ShardCount: 3, SessionID: "abc", Sequence: 5}); err != nil {
		t.Fatal(err)
	}
	m := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f))
	openReady(t, m)
	for _, r := range f.Load() {
		if r.ShardCount == 3 {
			t.Fatalf("stale record for another count kept: %+v", r)
		}
	}
	if st := sim.Stats(); st.Identifies != 2 || st.ResumesRejected != 0 {
		t.Fatalf("identifies %d, rejected resumes %d", st.Identifies, st.ResumesRejected)
	}
}

func TestShardActions(t *testing.T) {
	cfg := simConfig()
	cfg.Shards = 3
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	ctx := ctxT(t, 20*time.Second)
	if err := m.CloseShard(ctx, 1); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("CloseShard before Open: %v", err)
	}
	openReady(t, m)

	if err := m.CloseShard(ctx, 9); !errors.Is(err, ErrUnknownShard) {
		t.Fatalf("CloseShard(9): %v", err)
	}
	if err := m.CloseShard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if si, ok := m.Shard(1); !ok || si.State != gateway.StateClosed || !si.Resumable {
		t.Fatalf("after CloseShard: %+v, want closed with its session saved", si)
	}
	if err := m.WaitReady(ctx); err != nil { // closed shards are not waited for
		t.Fatalf("WaitReady with a closed shard: %v", err)
	}
	res := sim.Stats().Resumes
	if err := m.ResumeShard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.ResumeShard(ctx, 1); !errors.Is(err, ErrRunning) {
		t.Fatalf("ResumeShard on a running shard: %v", err)
	}
	if err := m.RestartShard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sim.Stats().Resumes - res; got != 2 {
		t.Fatalf("%d resumes, want 2 (ResumeShard, RestartShard)", got)
	}
	if st := sim.Stats(); st.Identifies != 3 {
		t.Fatalf("%d identifies, want 3", st.Identifies)
	}

	// A session handed in resumes the shard (disgo's ResumeShard with a state).
	sess := sessionOf(t, sim, 2)
	if err := m.CloseShard(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := m.ResumeShardSession(ctx, 2, gateway.Session{}); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("ResumeShardSession without a session ID: %v", err)
	}
	if err := m.ResumeShardSession(ctx, 2, sess); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sim.Stats().Resumes - res; got != 3 {
		t.Fatalf("%d resumes, want 3 (ResumeShard, RestartShard, ResumeShardSession)", got)
	}
	if err := m.ResumeShardSession(ctx, 2, sess); !errors.Is(err, ErrRunning) {
		t.Fatalf("ResumeShardSession on a running shard: %v", err)
	}
	checkShardActionsWithoutSession(t)
}

// sessionOf returns the session the simulator holds for shard id.
func sessionOf(t *testing.T, sim *discordsim.Server, id int) gateway.Session {
	t.Helper()
	for _, s := range sim.Sessions() {
		if s.ShardID == id {
			return gateway.Session{ID: s.ID, Sequence: s.Seq, ResumeURL: sim.ResumeURL()}
		}
	}
	t.Fatalf("the simulator has no session of shard %d", id)
	return gateway.Session{}
}

// A shard closed before it ever had a session (still queued for its
// identify) has nothing to resume: ResumeShard says so, naming the shard,
// and OpenShard identifies it.
func checkShardActionsWithoutSession(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.IdentifyWindow = 3, time.Second
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	ctx := ctxT(t, 20*time.Second)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	// Shard 2 waits two windows for its identify: close it while it does.
	if err := m.CloseShard(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := m.ResumeShard(ctx, 2); !errors.Is(err, ErrNoSession) {
		t.Fatalf("ResumeShard without session: %v", err)
	}
	var se *ShardError
	if err := m.ResumeShard(ctx, 2); !errors.As(err, &se) || se.Key != (ShardKey{2, 3}) {
		t.Fatalf("error does not name the shard: %v", err)
	}
	if err := m.OpenShard(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if st := sim.Stats(); st.Identifies != 3 || st.IdentifyViolations != 0 {
		t.Fatalf("identifies %d violations %d, want 3, 0", st.Identifies, st.IdentifyViolations)
	}
}

func TestFatalCloseFailsShard(t *testing.T) {
	cfg := simConfig()
	cfg.Shards = 2
	sim := startSim(t, cfg)
	type closed struct {
		key ShardKey
		err error
	}
	got := make(chan closed, 4)
	m := newTestManager(t, sim, cfg.IdentifyWindow, WithCloseHandler(func(k ShardKey, err error) { got <- closed{k, err} }))
	openReady(t, m)
	conns := sim.Stats().Connections
	if sim.CloseShard(1, 4014) != 1 {
		t.Fatal("sim closed no connection")
	}
	select {
	case c := <-got:
		if c.key != (ShardKey{1, 2}) || !errors.Is(c.err, gateway.ErrDisallowedIntents) {
			t.Fatalf("close handler got %v %v", c.key, c.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("close handler not called")
	}
	err := m.WaitReady(ctxT(t, 5*time.Second))
	var se *ShardError
	if !errors.As(err, &se) || se.Key != (ShardKey{1, 2}) || !errors.Is(err, gateway.ErrDisallowedIntents) {
		t.Fatalf("WaitReady: %v", err)
	}
	if n := sim.Stats().Connections; n != conns {
		t.Fatalf("failed shard reconnected (%d new connections)", n-conns)
	}
}

// noJoiningDelivery fails if the READY of a shard with count was delivered:
// it arrives while the shard joins and must be held back. (GUILD_CREATEs that
// follow the last READY may legitimately arrive after the switch.)
func noJoiningDelivery(t *testing.T, l *dispatchLog, count int) {
	t.Helper()
	for _, d := range l.snapshot() {
		if d.Key.Count == count && d.Event == "READY" {
			t.Fatalf("dispatch %s of joining shard %s delivered", d.Event, d.Key)
		}
	}
}

func checkRouting(t *testing.T, m *Manager, guilds int) {
	t.Helper()
	sum := 0
	for _, s := range m.Snapshot().Shards {
		if s.Role == RoleActive {
			sum += s.Guilds
		}
	}
	if sum != guilds {
		t.Fatalf("active shards hold %d guilds, want %d (overlap or hole)", sum, guilds)
	}
	checkRoutes(t, m, guilds)
}

// checkRoutes checks that every guild routes to the shard the simulator
// places it on.
func checkRoutes(t *testing.T, m *Manager, guilds int) {
	t.Helper()
	for i := range guilds {
		gid := discordsim.GuildID(i)
		sh, ok := m.ShardByGuild(gid)
		if !ok {
			t.Fatalf("guild %d: no shard", gid)
		}
		if want := discordsim.GuildShard(gid, sh.Key.Count); want != sh.Key.ID || sh.Role != RoleActive {
			t.Fatalf("guild %d routed to %v (%v), sim places it on %d/%d", gid, sh.Key, sh.Role, want, sh.Key.Count)
		}
	}
}

// A close handler may shut the manager down: Close from inside it returns.
func TestCloseFromCloseHandler(t *testing.T) {
	cfg := simConfig()
	cfg.Shards = 2
	sim := startSim(t, cfg)
	closed := make(chan error, 1)
	var m *Manager
	m = newTestManager(t, sim, cfg.IdentifyWindow, WithCloseHandler(func(ShardKey, error) {
		closed <- m.Close(context.Background())
	}))
	openReady(t, m)
	sim.CloseShard(1, 4004)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close from the close handler: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from the close handler did not return")
	}
}

// Concurrent Closes all return once the sessions are saved, with the same
// result.
func TestConcurrentClose(t *testing.T) {
	cfg := simConfig()
	cfg.Shards = 4
	sim := startSim(t, cfg)
	path := filepath.Join(t.TempDir(), "state.toml")
	f := openStore(t, path)
	defer f.Close()
	m := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f))
	openReady(t, m)
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- m.Close(ctxT(t, 10*time.Second)) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		// Whichever returns, the sessions are in the store already.
		if n := len(f.Load()); n != 4 {
			t.Fatalf("Close returned with %d sessions saved, want 4", n)
		}
	}
}

func TestSplitAndRepeatedSplit(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency, cfg.EventRate = 2, 2, 50
	sim := startSim(t, cfg)
	path := filepath.Join(t.TempDir(), "state.toml")
	f := openStore(t, path, store.WithFlushInterval(10*time.Millisecond))
	defer f.Close()
	var log dispatchLog
	m := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(f), WithDispatchHandler(log.handler))
	events, cancel := m.Subscribe(1024)
	defer cancel()
	openReady(t, m)
	ctx := ctxT(t, 20*time.Second)

	if err := m.SplitShard(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	want := []ShardKey{{0, 2}, {1, 4}, {3, 4}}
	if got := activeKeys(m); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after split: %v, want %v", got, want)
	}
	noJoiningDelivery(t, &log, 4)
	poll.Until(t, 5*time.Second, "old session 1/2 to end", func() bool {
		for _, s := range sim.Sessions() {
			if s.ShardID == 1 && s.ShardCount == 2 {
				return false
			}
		}
		return true
	})
	checkRouting(t, m, cfg.Guilds)

	// Split 3/4 again: its own count (4), not the global one.
	if err := m.SplitShard(ctx, 3, 2); err != nil {
		t.Fatal(err)
	}
	want = []ShardKey{{0, 2}, {1, 4}, {3, 8}, {7, 8}}
	if got := activeKeys(m); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after second split: %v, want %v", got, want)
	}
	noJoiningDelivery(t, &log, 8)
	checkRouting(t, m, cfg.Guilds)
	if err := m.SplitShard(ctx, 3, 1); err == nil {
		t.Fatal("split into 1 accepted")
	}

	// Delivery after the switch comes from the new shards.
	n0 := len(log.snapshot())
	poll.Until(t, 5*time.Second, "events from 7/8", func() bool {
		for _, d := range log.snapshot()[n0:] {
			if d.Key == (ShardKey{7, 8}) {
				return true
			}
		}
		return false
	})
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "store records of the active set", func() bool {
		var keys []ShardKey
		for _, r := range f.Load() {
			keys = append(keys, ShardKey{r.ShardID, r.ShardCount})
		}
		return fmt.Sprint(keys) == "[0/2 1/4 3/8 7/8]"
	})
	var done int
	for len(events) > 0 {
		if ev := <-events; ev.Type == EventSplitDone {
			done++
		}
	}
	if done != 2 {
		t.Fatalf("%d split-done events, want 2", done)
	}
	if st := sim.Stats(); st.IdentifyViolations != 0 {
		t.Fatalf("%d identify violations", st.IdentifyViolations)
	}
}

func TestSplitAbortKeepsOldShard(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.AllowedIntents = 2, discordsim.IntentsNonPrivileged
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	openReady(t, m)
	// New shards will be refused (4014): make them ask for a privileged intent.
	m.cfg.gatewayOpts = append(m.cfg.gatewayOpts, gateway.WithIntents(1<<1))
	err := m.SplitShard(ctxT(t, 10*time.Second), 1, 2)
	if !errors.Is(err, ErrAborted) || !errors.Is(err, gateway.ErrDisallowedIntents) {
		t.Fatalf("split: %v, want aborted with 4014", err)
	}
	if got := fmt.Sprint(activeKeys(m)); got != "[0/2 1/2]" {
		t.Fatalf("after abort: %v", got)
	}
	if !allActiveReady(m) {
		t.Fatal("old shard not serving after abort")
	}
	if n := len(m.Snapshot().Shards); n != 2 {
		t.Fatalf("%d shards in snapshot after abort", n)
	}
}

func TestAutoReshardOnFirstOpen(t *testing.T) {
	cfg := simConfig()
	// 40 guilds over 2 shards is 20 each; at most 6 per shard: one split
	// (10 each) is not enough, the manager splits again (5 each).
	cfg.Shards, cfg.MaxConcurrency, cfg.MaxGuildsPerShard = 2, 4, 6
	sim := startSim(t, cfg)
	var failed atomic.Int32
	m := newTestManager(t, sim, cfg.IdentifyWindow, WithAutoReshard(true),
		WithCloseHandler(func(ShardKey, error) { failed.Add(1) }))
	openReady(t, m)
	keys := activeKeys(m)
	if len(keys) != 8 {
		t.Fatalf("after auto re-shard: %v, want 8 shards of 8", keys)
	}
	for _, k := range keys {
		if k.Count != 8 {
			t.Fatalf("after auto re-shard: %v", keys)
		}
	}
	checkRouting(t, m, cfg.Guilds)
	if failed.Load() < 2 {
		t.Fatalf("close handler called %d times, want at least 2 (4011)", failed.Load())
	}
	if st := sim.Stats(); st.IdentifyViolations != 0 {
		t.Fatalf("%d identify violations", st.IdentifyViolations)
	}
}

func TestAutoReshardAfterReconnectAndAgain(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency = 2, 2
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow, WithAutoReshard(true))
	openReady(t, m)
	// A reconnect first, then Discord demands sharding.
	sim.DropTCP(1)
	poll.Until(t, 5*time.Second, "resume after drop", func() bool { return sim.Stats().Resumes >= 1 && allActiveReady(m) })
	sim.CloseShard(1, 4011)
	poll.Until(t, 10*time.Second, "split of 1/2", func() bool {
		return fmt.Sprint(activeKeys(m)) == "[0/2 1/4 3/4]" && allActiveReady(m)
	})
	// Again on a shard that was already split: its own count.
	sim.CloseShard(3, 4011)
	poll.Until(t, 10*time.Second, "split of 3/4", func() bool {
		return fmt.Sprint(activeKeys(m)) == "[0/2 1/4 3/8 7/8]" && allActiveReady(m)
	})
	if err := m.WaitReady(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	checkRouting(t, m, cfg.Guilds)
}

func TestReshardWhole(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency, cfg.EventRate = 5, 4, 20
	sim := startSim(t, cfg)
	var log dispatchLog
	m := newTestManager(t, sim, cfg.IdentifyWindow, WithShardCount(2), WithDispatchHandler(log.handler))
	openReady(t, m)
	ctx := ctxT(t, 20*time.Second)
	if err := m.Reshard(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(activeKeys(m)); got != "[0/3 1/3 2/3]" {
		t.Fatalf("after Reshard(3): %v", got)
	}
	noJoiningDelivery(t, &log, 3)
	checkRouting(t, m, cfg.Guilds)
	// 0 = Discord's recommendation (5).
	if err := m.Reshard(ctx, 0); err != nil {
		t.Fatal(err)
	}
	keys := activeKeys(m)
	if len(keys) != 5 || keys[4] != (ShardKey{4, 5}) {
		t.Fatalf("after Reshard(0): %v", keys)
	}
	poll.Until(t, 5*time.Second, "old sessions to end", func() bool {
		for _, s := range sim.Sessions() {
			if s.ShardCount != 5 {
				return false
			}
		}
		return true
	})
	if n := len(m.Snapshot().Shards); n != 5 {
		t.Fatalf("%d shards in snapshot, want 5 (old ones retired)", n)
	}
	checkRouting(t, m, cfg.Guilds)
	if st := sim.Stats(); st.IdentifyViolations != 0 {
		t.Fatalf("%d identify violations", st.IdentifyViolations)
	}
}

// A re-shard leaves shards already at the new count alone: no second shard
// with the same [id, count], no identify spent on them.
func TestReshardKeepsShardsAtTheNewCount(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency = 2, 2
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	openReady(t, m)
	ctx := ctxT(t, 20*time.Second)
	if err := m.SplitShard(ctx, 0, 2); err != nil {
		t.Fatal(err)
	}
	kept := map[ShardKey]string{}
	for _, s := range m.Snapshot().Shards {
		if s.Key.Count == 4 {
			kept[s.Key] = s.SessionID
		}
	}
	before := sim.Stats().Identifies
	stop := make(chan struct{})
	dups := make(chan string, 1)
	go func() { // watch every snapshot during the re-shard for a duplicate key
		defer close(dups)
		for {
			seen := map[ShardKey]bool{}
			for _, s := range m.Snapshot().Shards {
				if seen[s.Key] {
					dups <- s.Key.String()
					return
				}
				seen[s.Key] = true
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	err := m.Reshard(ctx, 4)
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := <-dups; ok {
		t.Fatalf("two shards with key %s during the re-shard", d)
	}
	if got := fmt.Sprint(activeKeys(m)); got != "[0/4 1/4 2/4 3/4]" {
		t.Fatalf("after Reshard(4): %s", got)
	}
	for _, s := range m.Snapshot().Shards {
		if id, ok := kept[s.Key]; ok && s.SessionID != id {
			t.Errorf("shard %s was replaced (session %s, was %s)", s.Key, s.SessionID, id)
		}
	}
	if n := sim.Stats().Identifies - before; n != 2 {
		t.Errorf("re-shard identified %d shards, want 2 (1/4 and 3/4)", n)
	}
	checkRouting(t, m, cfg.Guilds)
}

func TestChaos(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency, cfg.EventRate = 32, 4, 10
	cfg.HeartbeatInterval = 150 * time.Millisecond
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	openReady(t, m)
	faults := []func(int) int{
		sim.Reconnect,
		func(s int) int { return sim.InvalidateSession(s, true) },
		func(s int) int { return sim.InvalidateSession(s, false) },
		func(s int) int { return sim.CloseShard(s, 4000) },
		func(s int) int { return sim.CloseShard(s, 4007) },
		func(s int) int { return sim.CloseShard(s, 4009) },
		sim.Zombie,
		sim.DropTCP,
	}
	stop := time.Now().Add(3 * time.Second)
	tick := time.NewTicker(15 * time.Millisecond)
	for i := 0; time.Now().Before(stop); i++ {
		<-tick.C
		faults[i%len(faults)]((i * 7) % 32)
	}
	tick.Stop()
	poll.Until(t, 20*time.Second, "every shard READY after chaos", func() bool { return allActiveReady(m) })
	if err := m.WaitReady(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	st := sim.Stats()
	if st.IdentifyViolations != 0 {
		t.Fatalf("%d identify violations", st.IdentifyViolations)
	}
	var gaps uint64
	for _, s := range m.Snapshot().Shards {
		gaps += s.SequenceGaps
	}
	if gaps != 0 {
		t.Fatalf("%d sequence gaps", gaps)
	}
	t.Logf("faults %v; identifies %d, resumes %d, replayed %d", st.Faults, st.Identifies, st.Resumes, st.Replayed)
}

// TestChaosRandomFaults lets the simulator itself inject random faults of
// every kind (op 7, op 9 both ways, closes 4000/4007/4009, zombies, dropped
// TCP) at random moments on random shards, then checks the same outcome.
func TestChaosRandomFaults(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency, cfg.EventRate = 32, 4, 10
	cfg.HeartbeatInterval = 150 * time.Millisecond
	cfg.Seed = 42
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	openReady(t, m)
	sim.SetFaultRate(2)           // per connection per second: ~190 faults in 3 s
	<-time.After(3 * time.Second) // the chaos period itself, not synchronisation
	sim.SetFaultRate(0)
	poll.Until(t, 20*time.Second, "every shard READY after chaos", func() bool { return allActiveReady(m) })
	if err := m.WaitReady(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	st := sim.Stats()
	if len(st.Faults) < 8 {
		t.Fatalf("only %d fault kinds were injected: %v", len(st.Faults), st.Faults)
	}
	if st.IdentifyViolations != 0 {
		t.Fatalf("%d identify violations", st.IdentifyViolations)
	}
	for _, s := range m.Snapshot().Shards {
		if s.SequenceGaps != 0 {
			t.Fatalf("shard %s: %d sequence gaps", s.Key, s.SequenceGaps)
		}
	}
	t.Logf("faults %v; identifies %d, resumes %d, replayed %d", st.Faults, st.Identifies, st.Resumes, st.Replayed)
}

func Test500ShardsAtConcurrency500(t *testing.T) {
	if testing.Short() {
		t.Skip("500 connections")
	}
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency, cfg.Guilds = 500, 500, 500
	cfg.HeartbeatInterval = 5 * time.Second
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, 20*time.Millisecond)
	openReady(t, m)
	if st := sim.Stats(); st.Identifies != 500 || st.IdentifyViolations != 0 {
		t.Fatalf("identifies %d violations %d", st.Identifies, st.IdentifyViolations)
	}
	n := 0
	for si := range m.Shards() {
		if si.Key.ID != n || si.State != gateway.StateReady {
			t.Fatalf("shard #%d: %v %v, want %d ready, in ID order", n, si.Key, si.State, n)
		}
		n++
	}
	if n != 500 {
		t.Fatalf("%d shards", n)
	}
}

func TestSubscribeSlowSubscriberDrops(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency = 4, 4
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	slow, cancelSlow := m.Subscribe(1)
	fast, cancelFast := m.Subscribe(256)
	defer cancelSlow()
	var wg sync.WaitGroup
	readyEvents := 0
	wg.Go(func() {
		for ev := range fast {
			if ev.Type == EventState && ev.To == gateway.StateReady {
				readyEvents++
			}
		}
	})
	openReady(t, m)
	if m.Snapshot().Totals.DroppedEvents == 0 {
		t.Fatal("slow subscriber dropped nothing")
	}
	if len(slow) != 1 {
		t.Fatalf("slow subscriber holds %d events", len(slow))
	}
	cancelFast()
	wg.Wait()
	if readyEvents != 4 {
		t.Fatalf("%d ready events, want 4", readyEvents)
	}
	if err := m.Close(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	for range slow { // closed by Close
	}
}

// The budget shown is Discord's: identifies spent by another process on
// the same token show up after the next refresh of /gateway/bot.
func TestRefreshGatewayBot(t *testing.T) {
	cfg := simConfig()
	cfg.Shards = 2
	sim := startSim(t, cfg)
	m1 := newTestManager(t, sim, cfg.IdentifyWindow, WithRefreshInterval(50*time.Millisecond))
	openReady(t, m1)
	m2 := newTestManager(t, sim, cfg.IdentifyWindow)
	openReady(t, m2)
	want := sim.Stats().SessionStartRemaining
	poll.Until(t, 5*time.Second, "m1's budget to match Discord's", func() bool {
		b := m1.Snapshot().Limiter.Budget
		return b.Known && b.Remaining == want
	})
	if got := m1.Snapshot().RecommendedShards; got != 2 {
		t.Fatalf("recommended shards %d, want 2", got)
	}
}

// After c and o the operator sees one shard: LAST CLOSE says the close,
// and the reopened shard's first event goes on from closed, not idle.
func TestReopenedShardKeepsItsHistory(t *testing.T) {
	cfg := simConfig()
	cfg.Shards = 2
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	openReady(t, m)
	events, unsub := m.Subscribe(64)
	defer unsub()
	ctx := ctxT(t, 20*time.Second)
	if err := m.CloseShard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	info := func() ShardInfo {
		for _, s := range m.Snapshot().Shards {
			if s.Key.ID == 1 {
				return s
			}
		}
		t.Fatal("shard 1 missing")
		return ShardInfo{}
	}
	if si := info(); si.LastCloseCode != 4000 || si.LastCloseReason == "" {
		t.Fatalf("after CloseShard: last close %d %q, want 4000", si.LastCloseCode, si.LastCloseReason)
	}
	if err := m.OpenShard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if si := info(); si.LastCloseCode != 4000 {
		t.Fatalf("after OpenShard: last close %d %q, want the 4000 of the close kept", si.LastCloseCode, si.LastCloseReason)
	}
	var got []string
	for len(got) < 3 {
		select {
		case ev := <-events:
			if ev.Key.ID == 1 && ev.Type == EventState {
				got = append(got, ev.From.String()+"→"+ev.To.String())
			}
		case <-ctx.Done():
			t.Fatalf("events of shard 1: %v", got)
		}
	}
	want := []string{"ready→closed", "closed→connecting", "connecting→resuming"}
	if !slices.Equal(got, want) {
		t.Fatalf("events of shard 1: %v, want %v", got, want)
	}
}

// A max_concurrency above Discord's is warned about (identifies beyond
// Discord's buckets earn op 9); when Discord cannot be reached at all, the
// error is what Open returns and no lesser warning comes before it.
func TestStartupWarnings(t *testing.T) {
	var logs syncbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := simConfig()
	cfg.Shards = 2
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow, WithMaxConcurrency(4), WithLogger(logger))
	if err := m.Open(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "max_concurrency is above Discord's") || !strings.Contains(logs.String(), "discord_max_concurrency=1") {
		t.Fatalf("no warning for max_concurrency 4 over Discord's 1:\n%s", logs.String())
	}

	var unreachable syncbuf.Buffer
	m2, err := New(testToken, WithAPIURL("http://127.0.0.1:1/api/v10"),
		WithLogger(slog.New(slog.NewTextHandler(&unreachable, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close(context.Background())
	if err := m2.Open(ctxT(t, 5*time.Second)); err == nil {
		t.Fatal("Open against nothing succeeded")
	}
	if strings.Contains(unreachable.String(), "/users/@me") {
		t.Fatalf("a /users/@me warning came before the start-up error:\n%s", unreachable.String())
	}
}

// A shard that has sent its Identify when Close comes gets its READY first:
// closed at once, the identify spent would be lost and the next run would
// identify again instead of resuming.
func TestCloseKeepsAnIdentifyInFlight(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency = 2, 2
	cfg.ReadyDelay = 300 * time.Millisecond
	sim := startSim(t, cfg)
	path := filepath.Join(t.TempDir(), "state.toml")
	st := openStore(t, path)
	m := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(st))
	if err := m.Open(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "both shards identifying", func() bool {
		n := 0
		for _, s := range m.Snapshot().Shards {
			if s.State == gateway.StateIdentifying {
				n++
			}
		}
		return n == 2
	})
	if err := m.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(st.Load()); got != 2 {
		t.Fatalf("%d sessions saved, want the 2 whose identify was in flight", got)
	}
	if s := sim.Stats(); s.Identifies != 2 {
		t.Fatalf("%d identifies, want 2", s.Identifies)
	}
}

// A restart within one identify window waits out what is left of it: the
// buckets' last identifies are saved with the sessions. Here the second run
// has no session to resume (they were deleted), so it identifies at once in
// buckets the first run has just used: without the saved times, op 9.
func TestRestartWithinIdentifyWindowWaitsItOut(t *testing.T) {
	cfg := simConfig()
	cfg.Shards, cfg.MaxConcurrency = 2, 2
	cfg.IdentifyWindow = 500 * time.Millisecond
	sim := startSim(t, cfg)
	path := filepath.Join(t.TempDir(), "state.toml")

	st := openStore(t, path)
	first := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(st))
	openReady(t, first)
	if err := first.Close(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	for id := range 2 {
		if err := st.Delete(id, 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, path)
	defer st.Close()
	if conc, at := st.LastIdentifies(); conc != 2 || at[0].IsZero() || at[1].IsZero() {
		t.Fatalf("state file keeps last identifies %d %v, want both buckets", conc, at)
	}
	second := newTestManager(t, sim, cfg.IdentifyWindow, WithStore(st))
	openReady(t, second)
	if s := sim.Stats(); s.Identifies != 4 || s.IdentifyViolations != 0 {
		t.Fatalf("identifies %d, violations %d; want 4 and none", s.Identifies, s.IdentifyViolations)
	}
}

// Commands go out through the manager: to a shard, to a guild's shard, and
// a presence to every shard; a limit that is spent, a shard that is not
// ready, a reserved op and an unknown shard come back at once, each naming
// what went wrong.
func TestSendCommands(t *testing.T) {
	cfg := simConfig()
	cfg.Shards = 2
	sim := startSim(t, cfg)
	m := newTestManager(t, sim, cfg.IdentifyWindow)
	openReady(t, m)
	ctx := ctxT(t, 10*time.Second)
	voice := map[string]any{"guild_id": "41771983423143937", "channel_id": nil, "self_mute": false, "self_deaf": false}
	if err := m.Send(ctx, 1, 4, voice); err != nil {
		t.Fatalf("Send op 4: %v", err)
	}
	members := json.RawMessage(`{"guild_id":"41771983423143937","query":"","limit":0}`)
	if err := m.SendToGuild(ctx, 41771983423143937, 8, members); err != nil {
		t.Fatalf("SendToGuild op 8: %v", err)
	}
	presence := map[string]any{"since": nil, "activities": []any{}, "status": "online", "afk": false}
	if err := m.UpdatePresence(ctx, presence); err != nil {
		t.Fatalf("UpdatePresence: %v", err)
	}
	poll.Until(t, poll.Timeout, "the commands at the sim", func() bool {
		by := sim.Stats().PayloadsByOp
		return by[4] == 1 && by[8] == 1 && by[3] == 2
	})

	// The presence limit (5 per 20 s): the 6th within the window waits.
	var rl *gateway.RateLimitError
	for i := 1; ; i++ {
		err := m.Send(ctx, 0, 3, presence)
		if err == nil {
			if i > 5 {
				t.Fatal("a 6th presence update within 20 s went out")
			}
			continue
		}
		if !errors.As(err, &rl) || !errors.Is(err, gateway.ErrRateLimited) || rl.Limit != gateway.LimitPresence || rl.RetryAfter <= 0 {
			t.Fatalf("presence update %d: %v, want a presence RateLimitError with a wait", i, err)
		}
		var se *ShardError
		if !errors.As(err, &se) || se.Key != (ShardKey{0, 2}) {
			t.Fatalf("the rate-limit error does not name shard 0/2: %v", err)
		}
		break
	}
	if err := m.Send(ctx, 0, 1, nil); !errors.Is(err, gateway.ErrReservedOp) {
		t.Fatalf("Send op 1: %v, want ErrReservedOp", err)
	}
	if err := m.Send(ctx, 7, 4, voice); !errors.Is(err, ErrUnknownShard) {
		t.Fatalf("Send to shard 7: %v, want ErrUnknownShard", err)
	}
	if err := m.Send(ctx, 1, 4, json.RawMessage(`{"guild_id":`)); err == nil {
		t.Fatal("Send of invalid JSON went out")
	}
	if err := m.CloseShard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := m.Send(ctx, 1, 4, voice); !errors.Is(err, gateway.ErrClosed) && !errors.Is(err, gateway.ErrNotReady) {
		t.Fatalf("Send to a closed shard: %v, want ErrClosed or ErrNotReady", err)
	}
}
