package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
)

// The tests in this file run a shard in virtual time (testing/synctest)
// against a small gateway server on the other end of net.Pipe: timers are
// exact and a test waits for "every goroutine is blocked" rather than
// polling, so heartbeat, zombie and backoff timing is asserted exactly and
// cannot be flaky. Protocol behaviour is tested against discordsim over
// loopback (the other tests); this server only speaks enough of it for the
// timing: Hello, READY, heartbeat ACKs.

// pipeGateway is the server side of one shard's connections over net.Pipe.
type pipeGateway struct {
	t        *testing.T
	interval time.Duration
	conns    chan *pipeConn // each accepted connection
	dials    int            // dials so far (the dialer's goroutine only)
	refuse   int            // the first refuse dials fail
	dialedAt []time.Time
	mu       sync.Mutex
}

// pipeConn is one accepted connection, server side.
type pipeConn struct {
	ws         *websocket.Conn
	mu         sync.Mutex
	heartbeats []time.Time // when each heartbeat arrived
	ack        bool        // answer heartbeats with ACKs
	closeCode  int         // the close code the shard sent, once closed
	closed     chan struct{}
}

func newPipeGateway(t *testing.T, interval time.Duration) *pipeGateway {
	return &pipeGateway{t: t, interval: interval, conns: make(chan *pipeConn, 16)}
}

// dialer hands the shard the client end of a new pipe, or refuses.
func (g *pipeGateway) dialer() *websocket.Dialer {
	return &websocket.Dialer{NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		g.mu.Lock()
		g.dials++
		g.dialedAt = append(g.dialedAt, time.Now())
		refused := g.dials <= g.refuse
		g.mu.Unlock()
		if refused {
			return nil, errors.New("connection refused (pipe)")
		}
		client, server := net.Pipe()
		go g.serve(server)
		return client, nil
	}}
}

// hijacker is the http.ResponseWriter gorilla's Upgrader needs, over a raw
// connection: Upgrade hijacks it at once.
type hijacker struct {
	conn net.Conn
	rw   *bufio.ReadWriter
}

func (h *hijacker) Header() http.Header       { return http.Header{} }
func (h *hijacker) Write([]byte) (int, error) { return 0, errors.New("not hijacked") }
func (h *hijacker) WriteHeader(int)           {}
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, h.rw, nil
}

// serve upgrades one connection, sends Hello, answers Identify with READY
// and heartbeats with ACKs (while ack is set).
func (g *pipeGateway) serve(raw net.Conn) {
	rw := bufio.NewReadWriter(bufio.NewReader(raw), bufio.NewWriter(raw))
	req, err := http.ReadRequest(rw.Reader)
	if err != nil {
		raw.Close()
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := up.Upgrade(&hijacker{conn: raw, rw: rw}, req, nil)
	if err != nil {
		raw.Close()
		return
	}
	c := &pipeConn{ws: ws, ack: true, closed: make(chan struct{})}
	g.conns <- c
	defer close(c.closed)
	defer ws.Close()
	hello := map[string]any{"op": 10, "d": map[string]any{"heartbeat_interval": g.interval.Milliseconds()}}
	if ws.WriteJSON(hello) != nil {
		return
	}
	for {
		var p struct {
			Op int             `json:"op"`
			D  json.RawMessage `json:"d"`
		}
		if err := ws.ReadJSON(&p); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.mu.Lock()
				c.closeCode = ce.Code
				c.mu.Unlock()
			}
			return
		}
		switch p.Op {
		case opIdentify:
			ready := map[string]any{"op": 0, "t": "READY", "s": 1, "d": map[string]any{
				"session_id": "virtual", "resume_gateway_url": "ws://gateway.invalid", "guilds": []any{}}}
			if ws.WriteJSON(ready) != nil {
				return
			}
		case opHeartbeat:
			c.mu.Lock()
			c.heartbeats = append(c.heartbeats, time.Now())
			ack := c.ack
			c.mu.Unlock()
			if ack && ws.WriteJSON(map[string]any{"op": opHeartbeatACK}) != nil {
				return
			}
		}
	}
}

func (c *pipeConn) beats() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.heartbeats...)
}

func (c *pipeConn) stopACKs() {
	c.mu.Lock()
	c.ack = false
	c.mu.Unlock()
}

// virtualShard is a shard wired to g, with a gate that lets it identify
// and counts its calls.
func virtualShard(g *pipeGateway, opts ...Option) (*Shard, *testGate) {
	gate := &testGate{}
	base := []Option{
		WithURL("ws://gateway.invalid"), WithCompression(CompressionNone), WithDialer(g.dialer()),
		WithIdentifyGate(gate), WithIdentifyLead(time.Millisecond),
	}
	return New(testToken, 0, 1, append(base, opts...)...), gate
}

// The first heartbeat goes jitter x interval after Hello (within one
// heartbeat slot before it), then one every interval, exactly.
func TestVirtualHeartbeatTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 41250 * time.Millisecond
		g := newPipeGateway(t, interval)
		s, _ := virtualShard(g, WithHeartbeatJitter(func() float64 { return 0.25 }))
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		c := <-g.conns
		hello := time.Now()
		// The first beat: jitter x interval, floored to the heartbeat slot
		// (interval/32 of Unix time) it falls in; the rest an interval apart.
		first := beatDelay(hello.UnixNano(), interval/4, interval)
		if first > interval/4 || interval/4-first >= interval/heartbeatSlots {
			t.Fatalf("first beat %v after Hello, want within a slot before %v", first, interval/4)
		}
		time.Sleep(first + 3*interval)
		synctest.Wait()
		beats := c.beats()
		want := []time.Duration{first, first + interval, first + 2*interval, first + 3*interval}
		if len(beats) != len(want) {
			t.Fatalf("%d heartbeats in %v, want %d", len(beats), interval/4+3*interval, len(want))
		}
		for i, b := range beats {
			if got := b.Sub(hello); got != want[i] {
				t.Errorf("heartbeat %d at %v after Hello, want %v", i, got, want[i])
			}
		}
		if st := s.Stats(); st.State != StateReady || st.Heartbeats != 4 {
			t.Errorf("state %v, %d heartbeats sent, want ready and 4", st.State, st.Heartbeats)
		}
		if _, err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// A connection whose ACKs stop is a zombie: the shard closes it when the
// next heartbeat is due with the last one unanswered (two intervals after
// the last ACKed beat at most), and reconnects.
func TestVirtualZombieDetection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Second
		g := newPipeGateway(t, interval)
		s, _ := virtualShard(g, WithHeartbeatJitter(func() float64 { return 0 }), WithBackoff(time.Second, time.Minute))
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		c := <-g.conns
		time.Sleep(interval / 2) // the first beat (at 0) was ACKed
		synctest.Wait()
		c.stopACKs()
		// The beat at 1x goes unanswered; at 2x the shard finds it so.
		time.Sleep(interval + interval/2)
		synctest.Wait()
		select {
		case <-c.closed:
		default:
			t.Fatalf("the zombie connection is still open %v after its ACKs stopped", time.Since(c.beats()[0]))
		}
		if beats := c.beats(); len(beats) != 2 || beats[1].Sub(beats[0]) != interval {
			t.Fatalf("zombie connection got heartbeats %v, want 2, one interval apart", beats)
		}
		c.mu.Lock()
		code := c.closeCode
		c.mu.Unlock()
		if st := s.Stats(); code != resumableCloseCode || st.Reconnects != 1 {
			t.Errorf("after the zombie: closed with %d, reconnects %d, want %d (the session kept) and 1", code, st.Reconnects, resumableCloseCode)
		}
		// It reconnects at once (the first retry does not wait) and resumes.
		next := <-g.conns
		synctest.Wait()
		if s.State() != StateResuming && s.State() != StateReady {
			t.Errorf("after reconnecting: %v, want resuming", s.State())
		}
		_ = next
		if _, err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// Dials that fail back off exactly: the first retry at once, then min,
// 2 min, 4 min... up to max (jitter 1), and Stats shows when the next comes.
func TestVirtualBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newPipeGateway(t, time.Minute)
		g.refuse = 7
		s, gate := virtualShard(g, WithBackoff(time.Second, 8*time.Second), WithBackoffJitter(func() float64 { return 1 }))
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		<-g.conns // the 8th dial succeeds
		g.mu.Lock()
		at := append([]time.Time(nil), g.dialedAt...)
		g.mu.Unlock()
		want := []time.Duration{0, 1, 2, 4, 8, 8, 8}
		if len(at) != len(want)+1 {
			t.Fatalf("%d dials, want %d", len(at), len(want)+1)
		}
		for i, w := range want {
			if gap := at[i+1].Sub(at[i]); gap != w*time.Second {
				t.Errorf("gap %d = %v, want %v", i, gap, w*time.Second)
			}
		}
		synctest.Wait() // READY
		// Every failed dial gave its identify turn back; only the last
		// connection acquired one.
		if a, r, q := gate.approaches.Load(), gate.releases.Load(), gate.acquires.Load(); a != 8 || r != 8 || q != 1 {
			t.Errorf("gate: %d approaches, %d releases, %d acquires; want 8, 8 (7 failed dials, 1 READY), 1", a, r, q)
		}
		if st := s.Stats(); st.State != StateReady || st.ReconnectAttempts != 0 || st.Reconnects != 7 {
			t.Errorf("state %v, attempts %d, reconnects %d; want ready, 0 (reset by READY), 7", st.State, st.ReconnectAttempts, st.Reconnects)
		}
		if _, err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}
