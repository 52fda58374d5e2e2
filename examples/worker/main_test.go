package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/internal/syncbuf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// commands is a fake shardtop answering on PREFIX.cmd.0: it keeps the
// bodies it received and answers {"ok":true}.
type commands struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (c *commands) received() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.bodies)
}

// answerCommands subscribes a fake command responder on shardtop.cmd.0.
func answerCommands(t *testing.T, nc *nats.Conn) *commands {
	t.Helper()
	c := &commands{}
	sub, err := nc.Subscribe(natstest.Prefix+".cmd.0", func(m *nats.Msg) {
		c.mu.Lock()
		c.bodies = append(c.bodies, m.Data)
		c.mu.Unlock()
		_ = m.Respond([]byte(`{"ok":true}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil { // subscribed on the server
		t.Fatal(err)
	}
	return c
}

// checkPresence checks that body is a presence update as the contract and
// Discord say: {"op":3,"d":{"since","activities","status","afk"}}.
func checkPresence(t *testing.T, body []byte) {
	t.Helper()
	var cmd struct {
		Op int                        `json:"op"`
		D  map[string]json.RawMessage `json:"d"`
	}
	if err := json.Unmarshal(body, &cmd); err != nil {
		t.Fatalf("command body %s: %v", body, err)
	}
	var status string
	var activities []struct {
		Name string `json:"name"`
		Type *int   `json:"type"`
	}
	var afk bool
	_ = json.Unmarshal(cmd.D["status"], &status)
	_ = json.Unmarshal(cmd.D["activities"], &activities)
	if cmd.Op != 3 || status != "online" || len(activities) != 1 || activities[0].Name == "" || activities[0].Type == nil ||
		json.Unmarshal(cmd.D["afk"], &afk) != nil || string(cmd.D["since"]) != "null" {
		t.Errorf("command body %s: want a presence update (op 3, since null, one activity, status online, afk)", body)
	}
}

// workerRun is the worker running in-process until stopped.
type workerRun struct {
	out    syncbuf.Buffer
	cancel context.CancelFunc
	done   chan error
}

func startWorker(t *testing.T, url, durable string) *workerRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &workerRun{cancel: cancel, done: make(chan error, 1)}
	cfg, err := parseFlags([]string{"--bus-url", url, "--consumer", durable}, "")
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- run(ctx, cfg, &w.out) }()
	t.Cleanup(func() {
		cancel()
		<-w.done
	})
	return w
}

// stop stops the worker as a signal does and returns its output.
func (w *workerRun) stop(t *testing.T) string {
	t.Helper()
	w.cancel()
	select {
	case err := <-w.done:
		w.done <- err // for the cleanup
		if err != nil {
			t.Errorf("worker: %v", err)
		}
	case <-time.After(poll.Timeout):
		t.Fatalf("worker still runs %v after its stop", poll.Timeout)
	}
	return w.out.String()
}

// publish publishes n MESSAGE_CREATE over 4 shards, sequences from first,
// each shard's followed by a GUILD_CREATE the worker does not consume.
func publish(t *testing.T, js jetstream.JetStream, first, n int) {
	t.Helper()
	for i := range n {
		seq := uint64(first + i)
		natstest.Publish(t, js, natstest.MessageCreate(i%4, 4, "s", seq, "4194304000"))
	}
	for shard := range 4 {
		gc := natstest.MessageCreate(shard, 4, "g", uint64(first+shard), "4194304000")
		gc.Name = "GUILD_CREATE"
		natstest.Publish(t, js, gc)
	}
}

// allAcked waits until the durable consumer has acknowledged its first
// want deliveries and has nothing pending nor unacknowledged: every event
// it selects was handled and acknowledged. (Nothing pending alone is not
// enough: a consumer just made can show none before it counts them.)
func allAcked(t *testing.T, js jetstream.JetStream, durable string, want uint64) {
	t.Helper()
	poll.UntilState(t, poll.Timeout, "every event acknowledged", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cons, err := js.Consumer(ctx, natstest.Stream, durable)
		if err != nil {
			return false, err.Error()
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.AckFloor.Consumer >= want && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0,
			fmt.Sprintf("acked %d of %d, pending %d, ack pending %d, redelivered %d",
				info.AckFloor.Consumer, want, info.NumPending, info.NumAckPending, info.NumRedelivered)
	})
}

// TestWorker runs the worker against a real NATS server holding 2500
// MESSAGE_CREATE and a lost-events marker: it sends the presence update
// and prints the reply, counts exactly the MESSAGE_CREATE with a line per
// 1000, and acknowledges every event. Started again with the same durable
// name, it gets only what was published since.
func TestWorker(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	natstest.CreateStream(t, js, natstest.Stream, natstest.Prefix)
	cmds := answerCommands(t, nc)
	publish(t, js, 1, 2500)
	natstest.Publish(t, js, natstest.Event{Name: natstest.LostEvent, ShardID: 2, ShardCount: 4, Seq: 9000, Session: "s",
		Received: time.Now(), Lost: &natstest.LostRange{From: 9000, To: 9006}})

	w := startWorker(t, s.ClientURL(), "counter")
	allAcked(t, js, "counter", 2501) // the MESSAGE_CREATE and the marker
	out := w.stop(t)
	for _, want := range []string{
		"consuming stream SHARDTOP as counter\n",
		`presence update on shard 0: {"ok":true}` + "\n",
		"MESSAGE_CREATE: 1000 (last: shard 3/4, seq 1000)\n",
		"MESSAGE_CREATE: 2000 (last: shard 3/4, seq 2000)\n",
		"lost 7 events of shard 2/4 (seq 9000 to 9006)",
		"stopped: 2500 MESSAGE_CREATE\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "MESSAGE_CREATE: "); n != 2 {
		t.Errorf("%d count lines, want 2 (one per 1000):\n%s", n, out)
	}
	bodies := cmds.received()
	if len(bodies) != 1 {
		t.Fatalf("the responder got %d commands, want 1", len(bodies))
	}
	checkPresence(t, bodies[0])

	// Durable: the acknowledged events are not delivered again.
	publish(t, js, 5001, 700)
	w = startWorker(t, s.ClientURL(), "counter")
	allAcked(t, js, "counter", 2501+700)
	if out := w.stop(t); !strings.Contains(out, "stopped: 700 MESSAGE_CREATE\n") {
		t.Errorf("second run: want 700 new MESSAGE_CREATE, got:\n%s", out)
	}
}

// TestWorkerWithoutResponder: no shardtop answers the command; the worker
// says so and consumes all the same.
func TestWorkerWithoutResponder(t *testing.T) {
	s := natstest.Start(t)
	js := natstest.JetStream(t, s.ClientURL())
	natstest.CreateStream(t, js, natstest.Stream, natstest.Prefix)
	publish(t, js, 1, 3)
	w := startWorker(t, s.ClientURL(), "alone")
	allAcked(t, js, "alone", 3)
	out := w.stop(t)
	for _, want := range []string{"presence update: no one answers on shardtop.cmd.0", "stopped: 3 MESSAGE_CREATE"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
}
