package discordsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait in these tests: a deadline for a test that
// went wrong, not a speed requirement (waits end as soon as their condition
// holds), so it leaves room for -race on a loaded two-core machine.
const waitTimeout = 10 * time.Second

// startSim starts a server with fast defaults for tests and closes it at the end.
func startSim(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = time.Second
		// The test clients send no heartbeats: the default timeout (2 s
		// here) would close them 4009 in the middle of a test slowed by
		// a loaded machine. Tests of the timeout set their own.
		if cfg.HeartbeatTimeout == 0 {
			cfg.HeartbeatTimeout = time.Minute
		}
	}
	if cfg.CloseGrace == 0 {
		cfg.CloseGrace = 200 * time.Millisecond
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// frame is one decoded gateway payload.
type frame struct {
	Op  int             `json:"op"`
	S   *int64          `json:"s"`
	T   *string         `json:"t"`
	D   json.RawMessage `json:"d"`
	Raw []byte          `json:"-"`
}

func (f frame) String() string {
	t := "null"
	if f.T != nil {
		t = *f.T
	}
	return fmt.Sprintf("op=%d t=%s s=%v", f.Op, t, f.S)
}

func (f frame) seq() int64 {
	if f.S == nil {
		return -1
	}
	return *f.S
}

func (f frame) event() string {
	if f.T == nil {
		return ""
	}
	return *f.T
}

// client is a raw gorilla/websocket gateway client for tests. It decodes
// zlib-stream and zstd-stream itself: a pipe carries every binary message
// into one decompressor whose JSON output a goroutine decodes.
type client struct {
	t        testing.TB
	ws       *websocket.Conn
	compress string
	pw       *io.PipeWriter
	frames   chan frame
	decErr   chan error
	raw      [][]byte // compressed messages as received
}

func dial(t testing.TB, url, compress string) *client {
	t.Helper()
	q := "?v=10&encoding=json"
	if compress != "" {
		q += "&compress=" + compress
	}
	ws, _, err := websocket.DefaultDialer.Dial(url+"/"+q, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &client{t: t, ws: ws, compress: compress}
	t.Cleanup(func() { c.ws.Close() })
	if compress != "" {
		pr, pw := io.Pipe()
		c.pw = pw
		c.frames = make(chan frame, 1<<16)
		c.decErr = make(chan error, 1)
		var dec io.Reader
		var closeDec func()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer close(c.frames)
			switch compress {
			case "zlib-stream":
				zr, err := zlib.NewReader(pr)
				if err != nil {
					c.decErr <- err
					pr.CloseWithError(err)
					return
				}
				dec, closeDec = zr, func() { zr.Close() }
			case "zstd-stream":
				zr, err := zstd.NewReader(pr, zstd.WithDecoderConcurrency(1))
				if err != nil {
					c.decErr <- err
					pr.CloseWithError(err)
					return
				}
				dec, closeDec = zr, zr.Close
			}
			defer closeDec()
			jd := json.NewDecoder(dec)
			for {
				var raw json.RawMessage
				if err := jd.Decode(&raw); err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
						c.decErr <- err
					}
					pr.CloseWithError(err)
					return
				}
				var f frame
				if err := json.Unmarshal(raw, &f); err != nil {
					c.decErr <- err
					pr.CloseWithError(err)
					return
				}
				f.Raw = raw
				c.frames <- f
			}
		}()
		t.Cleanup(func() { pw.Close(); <-done })
	}
	return c
}

// read returns the next payload, failing the test on any error.
func (c *client) read() frame {
	c.t.Helper()
	f, err := c.next(waitTimeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// next returns the next payload or the error that ended the connection.
func (c *client) next(timeout time.Duration) (frame, error) {
	if c.compress != "" {
		select {
		case f, ok := <-c.frames:
			if ok {
				return f, nil
			}
		default:
		}
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
	for {
		mt, p, err := c.ws.ReadMessage()
		if err != nil {
			return frame{}, err
		}
		if c.compress == "" {
			if mt != websocket.TextMessage {
				return frame{}, fmt.Errorf("got message type %d without compression", mt)
			}
			var f frame
			if err := json.Unmarshal(p, &f); err != nil {
				return frame{}, fmt.Errorf("decode %q: %w", p, err)
			}
			f.Raw = p
			return f, nil
		}
		if mt != websocket.BinaryMessage {
			return frame{}, fmt.Errorf("got message type %d with compression %s", mt, c.compress)
		}
		if c.compress == "zlib-stream" && !bytes.HasSuffix(p, []byte{0, 0, 0xff, 0xff}) {
			return frame{}, fmt.Errorf("zlib-stream message does not end with 00 00 ff ff: % x", p[max(0, len(p)-8):])
		}
		c.raw = append(c.raw, p)
		if _, err := c.pw.Write(p); err != nil {
			return frame{}, fmt.Errorf("decompress: %w", err)
		}
		// One binary message holds exactly one payload: it must decode now.
		select {
		case f, ok := <-c.frames:
			if !ok {
				return frame{}, fmt.Errorf("decoder ended: %v", <-c.decErr)
			}
			return f, nil
		case err := <-c.decErr:
			return frame{}, fmt.Errorf("decode: %w", err)
		case <-time.After(timeout):
			return frame{}, errors.New("a binary message did not decode to a whole payload")
		}
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) sendRaw(p []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, p); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// hello reads and checks Hello.
func (c *client) hello() int64 {
	c.t.Helper()
	f := c.read()
	if f.Op != 10 {
		c.t.Fatalf("first payload %v, want op 10 Hello", f)
	}
	var d struct {
		HeartbeatInterval int64 `json:"heartbeat_interval"`
	}
	if err := json.Unmarshal(f.D, &d); err != nil || d.HeartbeatInterval <= 0 {
		c.t.Fatalf("bad Hello %s: %v", f.Raw, err)
	}
	return d.HeartbeatInterval
}

func identifyPayload(token string, shard, count int, intents int64) map[string]any {
	return map[string]any{"op": 2, "d": map[string]any{
		"token": token, "intents": intents, "shard": []int{shard, count},
		"properties": map[string]string{"os": "linux", "browser": "test", "device": "test"},
	}}
}

type readyData struct {
	SessionID        string `json:"session_id"`
	ResumeGatewayURL string `json:"resume_gateway_url"`
	Shard            []int  `json:"shard"`
	Guilds           []struct {
		ID          string `json:"id"`
		Unavailable bool   `json:"unavailable"`
	} `json:"guilds"`
	User struct {
		Bot bool `json:"bot"`
	} `json:"user"`
	RawUser json.RawMessage `json:"-"` // READY's user object as sent
}

// identify sends Identify and reads READY and every GUILD_CREATE.
func (c *client) identify(token string, shard, count int) readyData {
	c.t.Helper()
	c.send(identifyPayload(token, shard, count, 513))
	f := c.read()
	if f.event() != "READY" || f.seq() != 1 {
		c.t.Fatalf("after identify got %v (%s), want READY s=1", f, f.Raw)
	}
	var r readyData
	if err := json.Unmarshal(f.D, &r); err != nil {
		c.t.Fatalf("READY: %v", err)
	}
	var raw struct {
		User json.RawMessage `json:"user"`
	}
	if err := json.Unmarshal(f.D, &raw); err != nil {
		c.t.Fatalf("READY: %v", err)
	}
	r.RawUser = raw.User
	for i := range r.Guilds {
		g := c.read()
		if g.event() != "GUILD_CREATE" || g.seq() != int64(2+i) {
			c.t.Fatalf("guild %d: got %v, want GUILD_CREATE s=%d", i, g, 2+i)
		}
	}
	return r
}

// expectClose reads until the connection closes and checks the close code.
func (c *client) expectClose(code int) *websocket.CloseError {
	c.t.Helper()
	for {
		f, err := c.next(waitTimeout)
		if err == nil {
			continue // payloads sent before the close frame
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("want close %d, got %v", code, err)
		}
		if ce.Code != code {
			c.t.Fatalf("want close %d, got %d %q", code, ce.Code, ce.Text)
		}
		_ = f
		return ce
	}
}

// closeWith sends a close frame with code and waits for the server's answer.
func (c *client) closeWith(code int) {
	c.t.Helper()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
	for {
		if _, err := c.next(waitTimeout); err != nil {
			return
		}
	}
}

// httpClient keeps no idle connections, so no transport goroutine outlives a test.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitTimeout}

func getJSON(t testing.TB, url, auth string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("GET %s: decode: %v", url, err)
		}
	}
	return resp.StatusCode
}

func postJSON(t testing.TB, url string, into any) int {
	t.Helper()
	resp, err := httpClient.Post(url, "application/json", strings.NewReader(""))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	if into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("POST %s: decode: %v", url, err)
		}
	}
	return resp.StatusCode
}
