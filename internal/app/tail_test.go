package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/internal/syncbuf"
)

// tailRun is one `shardtop tail` running in-process, as Run runs it, with
// a context in place of the signals.
type tailRun struct {
	stdout, stderr syncbuf.Buffer
	cancel         context.CancelFunc
	done           chan int // the exit status
}

// startTail runs tail with args and the environment env; it is stopped at
// the end of the test if it still runs.
func startTail(t *testing.T, env map[string]string, args ...string) *tailRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &tailRun{cancel: cancel, done: make(chan int, 1)}
	go func() {
		r.done <- tail(ctx, args, &r.stdout, &r.stderr, func(k string) string { return env[k] })
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// watching waits until tail says on stderr that its consumer exists: what
// is published from then on is "new".
func (r *tailRun) watching(t *testing.T) {
	t.Helper()
	poll.UntilState(t, poll.Timeout, "tail to say it is watching", func() (bool, string) {
		return strings.Contains(r.stderr.String(), "shardtop tail: watching "), r.stderr.String()
	})
}

// exit waits for tail to end by itself and returns its status.
func (r *tailRun) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		r.done <- code // for the cleanup
		return code
	case <-time.After(poll.Timeout):
		t.Fatalf("tail still runs after %v; stderr:\n%s", poll.Timeout, r.stderr.String())
		return -1
	}
}

// stop ends tail as a signal does and returns its status.
func (r *tailRun) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	return r.exit(t)
}

// tailLine is a line of tail's output, with d kept raw to compare bytes.
type tailLine struct {
	Subject   string          `json:"subject"`
	Shard     []int           `json:"shard"`
	Seq       *uint64         `json:"seq"`
	Session   *string         `json:"session"`
	Event     *string         `json:"event"`
	Guild     *string         `json:"guild"`
	Received  *string         `json:"received"`
	StreamSeq uint64          `json:"stream_seq"`
	D         json.RawMessage `json:"d"`
	Lost      *struct {
		From, To, Count *uint64
	} `json:"lost"`
}

// lines parses what tail printed so far; every line must be a JSON
// object with exactly the documented keys.
func (r *tailRun) lines(t *testing.T) []tailLine {
	t.Helper()
	var out []tailLine
	for _, s := range strings.Split(strings.TrimSuffix(r.stdout.String(), "\n"), "\n") {
		if s == "" {
			continue
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal([]byte(s), &keys); err != nil {
			t.Fatalf("line is not a JSON object: %v\n%s", err, s)
		}
		want := []string{"subject", "shard", "seq", "session", "event", "guild", "received", "stream_seq", "d"}
		if _, ok := keys["lost"]; ok {
			want = append(want, "lost")
		}
		got := make([]string, 0, len(keys))
		for k := range keys {
			got = append(got, k)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("line has keys %v, want %v:\n%s", got, want, s)
		}
		var l tailLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("line %s: %v", s, err)
		}
		out = append(out, l)
	}
	return out
}

// waitLines waits until tail has printed n lines and returns them.
func (r *tailRun) waitLines(t *testing.T, n int) []tailLine {
	t.Helper()
	poll.UntilState(t, poll.Timeout, fmt.Sprintf("%d lines from tail", n), func() (bool, string) {
		return strings.Count(r.stdout.String(), "\n") >= n, r.stdout.String() + r.stderr.String()
	})
	return r.lines(t)
}

// Guild IDs on shard 0 and 1 of 2: (id >> 22) % 2.
const (
	guildOnShard0  = "4194304000" // 1000 << 22
	guildOnShard1  = "4198498304" // 1001 << 22
	guild2OnShard1 = "4206886912" // 1003 << 22
)

// busServer starts NATS with the contract's stream, and a JetStream
// connection to publish with.
func busServer(t *testing.T) (url string, js jetstream.JetStream) {
	t.Helper()
	s := natstest.Start(t)
	js = natstest.JetStream(t, s.ClientURL())
	natstest.CreateStream(t, js, natstest.Stream, natstest.Prefix)
	return s.ClientURL(), js
}

// TestTailPrintsEvents publishes events and a lost-events marker as the
// contract says, and checks every field of the lines tail prints; and that
// an event published before tail started is not printed (new events only).
func TestTailPrintsEvents(t *testing.T) {
	url, js := busServer(t)
	natstest.Publish(t, js, natstest.MessageCreate(0, 2, "old", 1, guildOnShard0))

	r := startTail(t, nil, "--bus-url", url)
	r.watching(t)

	received := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.UTC)
	msg := natstest.Event{
		Name: "MESSAGE_CREATE", ShardID: 1, ShardCount: 2, Seq: 42, Session: "sess-a", Guild: guildOnShard1,
		Received: received, Body: []byte(`{"content":"a <b> & c","nested":{"n":[1,2.5,null]}}`),
	}
	ready := natstest.Event{
		Name: "READY", ShardID: 0, ShardCount: 2, Seq: 1, Session: "sess-b",
		Received: received, Body: []byte(`{"v":10,"session_id":"sess-b"}`),
	}
	marker := natstest.Event{
		Name: natstest.LostEvent, ShardID: 1, ShardCount: 2, Seq: 43, Session: "sess-a",
		Received: received, Lost: &natstest.LostRange{From: 43, To: 47},
	}
	acks := []*jetstream.PubAck{
		natstest.Publish(t, js, msg), natstest.Publish(t, js, ready), natstest.Publish(t, js, marker),
	}
	lines := r.waitLines(t, 3)
	if code := r.stop(t); code != exitOK {
		t.Errorf("tail stopped with status %d, want %d; stderr:\n%s", code, exitOK, r.stderr.String())
	}
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3 (not the one published before tail started):\n%s", len(lines), r.stdout.String())
	}
	for i, e := range []natstest.Event{msg, ready, marker} {
		l := lines[i]
		if l.Subject != e.Subject() || !slices.Equal(l.Shard, []int{e.ShardID, e.ShardCount}) ||
			l.Seq == nil || *l.Seq != e.Seq || l.Session == nil || *l.Session != e.Session ||
			l.Event == nil || *l.Event != e.Name || l.StreamSeq != acks[i].Sequence ||
			l.Received == nil || *l.Received != "2025-03-04T05:06:07.891234567Z" {
			t.Errorf("line %d = %+v, want the fields of %s seq %d at stream seq %d", i, l, e.Subject(), e.Seq, acks[i].Sequence)
		}
	}
	if g := lines[0].Guild; g == nil || *g != guildOnShard1 {
		t.Errorf("MESSAGE_CREATE guild = %v, want %s", g, guildOnShard1)
	}
	if lines[1].Guild != nil {
		t.Errorf("READY guild = %q, want null (it has none)", *lines[1].Guild)
	}
	// d is the body itself, byte for byte, not a string holding it.
	if !bytes.Equal(lines[0].D, msg.Body) || !bytes.Equal(lines[1].D, ready.Body) {
		t.Errorf("d = %s and %s, want %s and %s", lines[0].D, lines[1].D, msg.Body, ready.Body)
	}
	if lines[0].Lost != nil || lines[1].Lost != nil {
		t.Errorf("events that are no markers have a lost range: %+v, %+v", lines[0].Lost, lines[1].Lost)
	}
	lost := lines[2].Lost
	if lost == nil || lost.From == nil || lost.To == nil || lost.Count == nil ||
		*lost.From != 43 || *lost.To != 47 || *lost.Count != 5 {
		t.Errorf("marker's lost = %+v, want from 43 to 47, count 5", lost)
	}
	if string(lines[2].D) != "null" {
		t.Errorf("marker's d = %s, want null for its empty body", lines[2].D)
	}
}

// TestTailFromStart prints what the stream held before tail started, with
// --from-start.
func TestTailFromStart(t *testing.T) {
	url, js := busServer(t)
	first := natstest.Publish(t, js, natstest.MessageCreate(0, 1, "s", 1, guildOnShard0))
	second := natstest.Publish(t, js, natstest.MessageCreate(0, 1, "s", 2, guildOnShard0))

	r := startTail(t, nil, "--bus-url", url, "--from-start")
	lines := r.waitLines(t, 2)
	if len(lines) != 2 || lines[0].StreamSeq != first.Sequence || lines[1].StreamSeq != second.Sequence {
		t.Errorf("lines %+v, want stream seqs %d and %d", lines, first.Sequence, second.Sequence)
	}
	if code := r.stop(t); code != exitOK {
		t.Errorf("status %d, want %d", code, exitOK)
	}
}

// TestTailFilters checks each filter flag and their combinations against
// a fixed set of events: --event and --shard on the subject, --guild on the
// header, and markers of the selected shards always. Each case ends with a
// sentinel it selects: once tail printed it, every event before it has been
// seen or filtered out, since the stream delivers in order.
func TestTailFilters(t *testing.T) {
	url, js := busServer(t)
	lost := func(shard int, from, to uint64) natstest.Event {
		return natstest.Event{Name: natstest.LostEvent, ShardID: shard, ShardCount: 2, Seq: from, Session: "s",
			Received: time.Now(), Lost: &natstest.LostRange{From: from, To: to}}
	}
	guildCreate := natstest.MessageCreate(1, 2, "s", 3, guildOnShard1)
	guildCreate.Name = "GUILD_CREATE"
	typing := natstest.MessageCreate(0, 2, "s", 4, guildOnShard0)
	typing.Name = "TYPING_START"
	ready := natstest.Event{Name: "READY", ShardID: 0, ShardCount: 2, Seq: 5, Session: "s", Received: time.Now(), Body: []byte(`{}`)}
	events := []natstest.Event{
		0: natstest.MessageCreate(0, 2, "s", 1, guildOnShard0),
		1: natstest.MessageCreate(1, 2, "s", 2, guildOnShard1),
		2: guildCreate,
		3: typing,
		4: ready,
		5: lost(1, 10, 14),
		6: lost(0, 20, 21),
		7: natstest.MessageCreate(1, 2, "s", 8, guild2OnShard1),
	}
	for _, tc := range []struct {
		name     string
		args     []string
		want     []int // indices in events
		sentinel int   // the event whose copy ends the case
	}{
		{"none", nil, []int{0, 1, 2, 3, 4, 5, 6, 7}, 7},
		{"event", []string{"--event", "MESSAGE_CREATE"}, []int{0, 1, 5, 6, 7}, 7},
		{"shard", []string{"--shard", "1"}, []int{1, 2, 5, 7}, 7},
		{"guild", []string{"--guild", guildOnShard1}, []int{1, 2, 5}, 1},
		{"event and shard", []string{"--event", "MESSAGE_CREATE", "--shard", "0"}, []int{0, 6}, 0},
		{"markers only", []string{"--event", natstest.LostEvent}, []int{5, 6}, 6},
		{"all three", []string{"--event", "GUILD_CREATE", "--shard", "1", "--guild", guildOnShard1}, []int{2, 5}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startTail(t, nil, append([]string{"--bus-url", url}, tc.args...)...)
			r.watching(t)
			// A session of its own for each case, or the stream would drop
			// its events as duplicates of the last case's.
			seqs := make([]uint64, len(events))
			for i, e := range events {
				e.Session = tc.name
				seqs[i] = natstest.Publish(t, js, e).Sequence
			}
			sentinel := events[tc.sentinel]
			sentinel.Session, sentinel.Seq = tc.name, sentinel.Seq+1000
			end := natstest.Publish(t, js, sentinel).Sequence
			poll.UntilState(t, poll.Timeout, "the sentinel", func() (bool, string) {
				return strings.Contains(r.stdout.String(), fmt.Sprintf(`"stream_seq":%d,`, end)), r.stdout.String()
			})
			var want []uint64
			for _, i := range tc.want {
				want = append(want, seqs[i])
			}
			want = append(want, end)
			var got []uint64
			for _, l := range r.lines(t) {
				got = append(got, l.StreamSeq)
			}
			if !slices.Equal(got, want) {
				t.Errorf("tail %v printed stream seqs %v, want %v:\n%s", tc.args, got, want, r.stdout.String())
			}
		})
	}
}

// TestTailPrefixAndStream reads another stream under another prefix.
func TestTailPrefixAndStream(t *testing.T) {
	s := natstest.Start(t)
	js := natstest.JetStream(t, s.ClientURL())
	natstest.CreateStream(t, js, "BOT2", "bot2.bus")
	r := startTail(t, nil, "--bus-url", s.ClientURL(), "--prefix", "bot2.bus", "--stream", "BOT2", "--shard", "3")
	r.watching(t)
	e := natstest.MessageCreate(3, 4, "s", 1, guildOnShard0)
	e.Prefix = "bot2.bus"
	natstest.Publish(t, js, e)
	if lines := r.waitLines(t, 1); lines[0].Subject != "bot2.bus.ev.MESSAGE_CREATE.3" {
		t.Errorf("subject %q, want bot2.bus.ev.MESSAGE_CREATE.3", lines[0].Subject)
	}
}

// TestTailMalformedHeaders: a header that is not what the contract says is
// null, and said on stderr; a body that is not JSON is kept as a string.
func TestTailMalformedHeaders(t *testing.T) {
	url, js := busServer(t)
	r := startTail(t, nil, "--bus-url", url)
	r.watching(t)
	m := natstest.MessageCreate(0, 1, "s", 1, guildOnShard0).Msg()
	m.Header.Set("Shardtop-Seq", "twelve")
	m.Header.Set("Shardtop-Shard", "5/2")
	m.Data = []byte("not json")
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	l := r.waitLines(t, 1)[0]
	if l.Seq != nil || l.Shard != nil || string(l.D) != `"not json"` {
		t.Errorf("seq %v, shard %v, d %s: want null, null and the body as a string", l.Seq, l.Shard, l.D)
	}
	for _, want := range []string{`Shardtop-Seq "twelve" is not a number`, `Shardtop-Shard "5/2" is not ID/COUNT`, `body "not json" is not JSON`} {
		if !strings.Contains(r.stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr.String())
		}
	}
}

// TestTailBadFlags: exit 2 with a message naming the flag, before any
// connection (the URL below is never dialled).
func TestTailBadFlags(t *testing.T) {
	missingCreds := filepath.Join(t.TempDir(), "none.creds")
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--shard", "x"}, "-shard must be a shard ID"},
		{[]string{"--shard", "-1"}, "-shard must be a shard ID"},
		{[]string{"--guild", "12ab"}, "-guild must be a guild ID"},
		{[]string{"--event", "MESSAGE.CREATE"}, `-event "MESSAGE.CREATE": must be one subject token`},
		{[]string{"--event", "*"}, `-event "*": must be one subject token`},
		{[]string{"--prefix", "a..b"}, `-prefix "a..b": must be one subject token`},
		{[]string{"--stream", "A.B"}, `-stream "A.B": a stream name`},
		{[]string{"--bus-url", " "}, "-bus-url must not be empty"},
		{[]string{"--creds", missingCreds}, "-creds " + missingCreds},
		{[]string{"--creds", os.TempDir()}, "-creds " + os.TempDir()},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
	} {
		var stdout, stderr bytes.Buffer
		code := Run("", append([]string{"tail", "--bus-url", "nats://127.0.0.1:1"}, tc.args...), &stdout, &stderr, func(string) string { return "" })
		if code != exitUsage || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("tail %v: status %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), exitUsage, tc.says)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := Run("", []string{"tail", "--help"}, &stdout, &stderr, func(string) string { return "" }); code != exitOK ||
		!strings.Contains(stderr.String(), "Usage: shardtop tail") {
		t.Errorf("tail --help: status %d, stderr %q", code, stderr.String())
	}
}

// TestTailCannotConnect: exit 1 with the URL in the message, and any
// credentials in the URL hidden.
func TestTailCannotConnect(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	for _, tc := range []struct{ url, shown string }{
		{"nats://" + addr, "nats://" + addr},
		{"nats://s3cret-token@" + addr, "nats://***@" + addr},
		{"nats://user:s3cret-pass@" + addr, "nats://***@" + addr},
	} {
		r := startTail(t, nil, "--bus-url", tc.url)
		if code := r.exit(t); code != exitFailure {
			t.Errorf("status %d, want %d", code, exitFailure)
		}
		stderr := r.stderr.String()
		if !strings.Contains(stderr, "shardtop tail: cannot connect to "+tc.shown+":") || strings.Contains(stderr, "s3cret") {
			t.Errorf("stderr %q: want it to name %s and hide the credentials", stderr, tc.shown)
		}
	}
}

// TestTailNoStream: a server without the stream is exit 1, naming it.
func TestTailNoStream(t *testing.T) {
	s := natstest.Start(t)
	r := startTail(t, nil, "--bus-url", s.ClientURL())
	if code := r.exit(t); code != exitFailure {
		t.Errorf("status %d, want %d", code, exitFailure)
	}
	if want := "no stream SHARDTOP at " + s.ClientURL(); !strings.Contains(r.stderr.String(), want) {
		t.Errorf("stderr %q does not say %q", r.stderr.String(), want)
	}
}

// TestTailToken: a server that wants a token refuses tail without
// SHARDTOP_BUS_TOKEN (exit 1, the token never shown), and takes it with.
func TestTailToken(t *testing.T) {
	const token = "bus-s3cret"
	s := natstest.Start(t, func(o *server.Options) { o.Authorization = token })
	js := natstest.JetStream(t, s.ClientURL(), nats.Token(token))
	natstest.CreateStream(t, js, natstest.Stream, natstest.Prefix)

	refused := startTail(t, map[string]string{busTokenEnv: "wrong"}, "--bus-url", s.ClientURL())
	if code := refused.exit(t); code != exitFailure {
		t.Errorf("wrong token: status %d, want %d", code, exitFailure)
	}
	if stderr := refused.stderr.String(); !strings.Contains(stderr, "cannot connect to "+s.ClientURL()) ||
		!strings.Contains(strings.ToLower(stderr), "authorization") || strings.Contains(stderr, "wrong") {
		t.Errorf("wrong token: stderr %q, want the URL and an authorization error, not the token", stderr)
	}

	r := startTail(t, map[string]string{busTokenEnv: token}, "--bus-url", s.ClientURL())
	r.watching(t)
	natstest.Publish(t, js, natstest.MessageCreate(0, 1, "s", 1, guildOnShard0))
	r.waitLines(t, 1)
	if code := r.stop(t); code != exitOK {
		t.Errorf("status %d, want %d", code, exitOK)
	}
	if strings.Contains(r.stdout.String()+r.stderr.String(), token) {
		t.Error("the token shows in tail's output")
	}
}

// TestTailCreds: --creds FILE authenticates with a NATS credentials file;
// one the server does not know is exit 1, naming the file.
func TestTailCreds(t *testing.T) {
	s, creds := natstest.StartWithCredentials(t)
	js := natstest.JetStream(t, s.ClientURL(), nats.UserCredentials(creds))
	natstest.CreateStream(t, js, natstest.Stream, natstest.Prefix)

	r := startTail(t, nil, "--bus-url", s.ClientURL(), "--creds", creds)
	r.watching(t)
	natstest.Publish(t, js, natstest.MessageCreate(0, 1, "s", 1, guildOnShard0))
	r.waitLines(t, 1)
	if code := r.stop(t); code != exitOK {
		t.Errorf("status %d, want %d", code, exitOK)
	}

	_, other := natstest.StartWithCredentials(t) // another operator's user
	bad := startTail(t, nil, "--bus-url", s.ClientURL(), "--creds", other)
	if code := bad.exit(t); code != exitFailure || !strings.Contains(bad.stderr.String(), "with credentials "+other) {
		t.Errorf("unknown user: status %d, stderr %q; want %d naming %s", code, bad.stderr.String(), exitFailure, other)
	}
}

// TestTailSurvivesServerRestart: tail reconnects for as long as it runs,
// saying so, and goes on printing the events published after a restart of
// the server.
func TestTailSurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	start := func() *server.Server {
		return natstest.Start(t, func(o *server.Options) { o.Port, o.StoreDir = port, dir })
	}
	s := start()
	js := natstest.JetStream(t, s.ClientURL())
	natstest.CreateStream(t, js, natstest.Stream, natstest.Prefix)
	r := startTail(t, nil, "--bus-url", s.ClientURL())
	r.watching(t)
	natstest.Publish(t, js, natstest.MessageCreate(0, 1, "s", 1, guildOnShard0))
	r.waitLines(t, 1)

	s.Shutdown()
	s.WaitForShutdown()
	poll.UntilState(t, poll.Timeout, "tail to see the server go", func() (bool, string) {
		return strings.Contains(r.stderr.String(), "disconnected from"), r.stderr.String()
	})
	s = start()
	js2 := natstest.JetStream(t, s.ClientURL())
	natstest.Publish(t, js2, natstest.MessageCreate(0, 1, "s", 2, guildOnShard0))
	lines := r.waitLines(t, 2)
	if *lines[1].Seq != 2 {
		t.Errorf("second line has seq %d, want 2", *lines[1].Seq)
	}
	if !strings.Contains(r.stderr.String(), "reconnected to "+s.ClientURL()) {
		t.Errorf("stderr does not say it reconnected:\n%s", r.stderr.String())
	}
	if code := r.stop(t); code != exitOK {
		t.Errorf("status %d, want %d", code, exitOK)
	}
}

// freePort is a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestTailConnectionClosed: when the server no longer lets tail in (its
// token was changed), NATS gives the connection up and tail ends with exit
// 1, saying so, rather than waiting for events that cannot come.
func TestTailConnectionClosed(t *testing.T) {
	var opts *server.Options
	s := natstest.Start(t, func(o *server.Options) {
		o.Authorization = "old-token"
		opts = o
	})
	quiet := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}) // this connection is refused too
	js := natstest.JetStream(t, s.ClientURL(), nats.Token("old-token"), quiet)
	natstest.CreateStream(t, js, natstest.Stream, natstest.Prefix)
	r := startTail(t, map[string]string{busTokenEnv: "old-token"}, "--bus-url", s.ClientURL())
	r.watching(t)

	changed := opts.Clone()
	changed.Authorization = "new-token"
	if err := s.ReloadOptions(changed); err != nil {
		t.Fatal(err)
	}
	if code := r.exit(t); code != exitFailure {
		t.Errorf("status %d, want %d", code, exitFailure)
	}
	if want := "shardtop tail: the connection to " + s.ClientURL() + " was closed"; !strings.Contains(r.stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, r.stderr.String())
	}
	if strings.Contains(r.stderr.String(), "old-token") {
		t.Errorf("stderr shows the token:\n%s", r.stderr.String())
	}
}
