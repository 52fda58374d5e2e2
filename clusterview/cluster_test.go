package clusterview

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/tui"
)

var _ tui.Manager = (*View)(nil)

const (
	tick = 50 * time.Millisecond
	gone = 400 * time.Millisecond
	wait = 15 * time.Second
)

// TestViewMergesTwoNodesAndActsRemotely: two managers on one simulator,
// each publishing; node A's view shows all four shards with their node,
// both nodes, and closes a shard of node B through B's action subject.
func TestViewMergesTwoNodesAndActsRemotely(t *testing.T) {
	sim := startSim(t)
	url := natsURL(t)
	a := newManager(t, sim, 0, 1)
	b := newManager(t, sim, 2, 3)
	ncA, ncB := connect(t, url), connect(t, url)
	publish(t, ncA, "n1", a, WithInterval(tick))
	publish(t, ncB, "n2", b, WithInterval(tick), WithLeases(func() int { return 2 }))
	v := newView(t, ncA, "n1", a, WithInterval(tick), WithGoneAfter(gone))

	var s manager.Snapshot
	poll.UntilState(t, wait, "all four shards Ready in A's view", func() (bool, string) {
		v.SnapshotInto(&s)
		return s.Totals.Total == 4 && s.Totals.Ready == 4 && len(s.Shards) == 4, summary(&s)
	})
	want := []string{"n1", "n1", "n2", "n2"}
	for i, sh := range s.Shards {
		if sh.Key != (manager.ShardKey{ID: i, Count: 4}) || sh.Node != want[i] {
			t.Errorf("row %d: %v on %q, want %d/4 on %q", i, sh.Key, sh.Node, i, want[i])
		}
		if remote := sh.Node == "n2"; sh.Guilds == 0 || remote && (sh.SessionID != "" || sh.ResumeURL != "") {
			t.Errorf("row %d: guilds %d, session %q, resume URL %q (want guilds, no session on the wire)",
				i, sh.Guilds, sh.SessionID, sh.ResumeURL)
		}
	}
	if len(s.Nodes) != 2 {
		t.Fatalf("nodes = %+v, want n1 and n2", s.Nodes)
	}
	n1, _ := nodeOf(&s, "n1")
	n2, _ := nodeOf(&s, "n2")
	if !n1.Self || n2.Self || n1.Shards != 2 || n2.Shards != 2 || n2.Ready != 2 || n2.Leases != 2 || n1.Gone || n2.Gone {
		t.Errorf("nodes = %+v", s.Nodes)
	}

	var d manager.ShardDetail
	if !v.ShardDetailInto(manager.ShardKey{ID: 0, Count: 4}, &d) || v.ShardDetailInto(manager.ShardKey{ID: 2, Count: 4}, &d) {
		t.Error("ShardDetailInto: want true for local shard 0/4, false for n2's 2/4")
	}

	// A shard of node B, closed through A's view.
	if err := v.CloseShard(ctxT(t, 5*time.Second), 3); err != nil {
		t.Fatalf("CloseShard(3) through n1: %v", err)
	}
	poll.Until(t, wait, "shard 3 closed on B's manager", func() bool {
		sh, ok := shardOf(ptr(b.Snapshot()), 3)
		return ok && sh.State == gateway.StateClosed
	})
	poll.Until(t, wait, "shard 3 closed in A's view", func() bool {
		v.SnapshotInto(&s)
		sh, ok := shardOf(&s, 3)
		return ok && sh.State == gateway.StateClosed && sh.Node == "n2"
	})
	if sh, _ := shardOf(ptr(a.Snapshot()), 0); sh.State != gateway.StateReady {
		t.Errorf("A's shard 0 is %v, want Ready (untouched)", sh.State)
	}

	// An action B's manager refuses comes back naming the node and shard,
	// matching the manager's sentinel.
	err := v.ResumeShard(ctxT(t, 5*time.Second), 2)
	var re *RemoteError
	if !errors.As(err, &re) || re.Node != "n2" || !strings.Contains(err.Error(), "node n2: shard 2") ||
		!errors.Is(err, manager.ErrRunning) {
		t.Errorf("ResumeShard(2) of a running shard = %v, want a RemoteError naming n2 and shard 2, ErrRunning", err)
	}
	// Resume it remotely, and a local action goes to the local manager.
	if err := v.ResumeShard(ctxT(t, 5*time.Second), 3); err != nil {
		t.Fatalf("ResumeShard(3): %v", err)
	}
	if err := v.RestartShard(ctxT(t, 5*time.Second), 0); err != nil {
		t.Fatalf("RestartShard(0) local: %v", err)
	}
	poll.Until(t, wait, "shard 3 Ready again on B", func() bool {
		sh, ok := shardOf(ptr(b.Snapshot()), 3)
		return ok && sh.State == gateway.StateReady
	})
	// An unknown shard gets the local manager's error.
	if err := v.CloseShard(ctxT(t, 5*time.Second), 9); !errors.Is(err, manager.ErrUnknownShard) {
		t.Errorf("CloseShard(9) = %v, want ErrUnknownShard", err)
	}
}

func ptr[T any](v T) *T { return &v }

func summary(s *manager.Snapshot) string {
	var b strings.Builder
	for _, sh := range s.Shards {
		b.WriteString(sh.Key.String() + "@" + sh.Node + ":" + sh.State.String() + " ")
	}
	return b.String()
}

// TestNodeTurnsGone: a node that stops publishing is Gone after the
// deadline and its shards leave the table.
func TestNodeTurnsGone(t *testing.T) {
	sim := startSim(t)
	url := natsURL(t)
	b := newManager(t, sim, 2, 3)
	p := publish(t, connect(t, url), "n2", b, WithInterval(tick))
	v := newView(t, connect(t, url), "watch", nil, WithGoneAfter(gone))
	var s manager.Snapshot
	poll.UntilState(t, wait, "n2 listed with two shards", func() (bool, string) {
		v.SnapshotInto(&s)
		n, ok := nodeOf(&s, "n2")
		return ok && !n.Gone && len(s.Shards) == 2, summary(&s)
	})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	var n2 manager.NodeInfo
	poll.Until(t, wait, "n2 Gone", func() bool {
		v.SnapshotInto(&s)
		n2, _ = nodeOf(&s, "n2")
		return n2.Gone
	})
	if d := s.At.Sub(n2.LastSeen); d <= gone {
		t.Errorf("n2 turned Gone %v after its last snapshot, before the %v deadline", d, gone)
	}
	if len(s.Shards) != 0 || s.Totals.Total != 0 {
		t.Errorf("gone node's shards still shown: %s", summary(&s))
	}
}

// TestMalformedSnapshotIgnored: garbage on a node's subject is logged with
// the subject and changes nothing.
func TestMalformedSnapshotIgnored(t *testing.T) {
	url := natsURL(t)
	var logs logBuf
	nc := connect(t, url)
	v := newView(t, nc, "watch", nil, WithLogger(logs.logger()))
	bad := map[string][]byte{
		"shardtop.cluster.snapshot.evil":  []byte("{not json"),
		"shardtop.cluster.snapshot.other": []byte(`{"n":"someone-else","at":1}`),
		"shardtop.cluster.snapshot.neg":   []byte(`{"n":"neg","at":1,"s":[{"i":-1,"c":4}]}`),
	}
	for subj, data := range bad {
		if err := nc.Publish(subj, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, wait, "three warnings logged", func() bool {
		return strings.Count(logs.String(), "level=WARN") == 3
	})
	for subj := range bad {
		if !strings.Contains(logs.String(), "subject="+subj) {
			t.Errorf("log does not name %s:\n%s", subj, logs.String())
		}
	}
	var s manager.Snapshot
	v.SnapshotInto(&s)
	if len(s.Nodes) != 1 || !s.Nodes[0].Self || !s.Nodes[0].WatchOnly || len(s.Shards) != 0 {
		t.Errorf("after garbage: nodes %+v, shards %s", s.Nodes, summary(&s))
	}
}

// TestWatchOnlyView: a view with no local manager lists a watch-only
// publisher and the shard nodes, acts on remote shards, and has no events.
func TestWatchOnlyView(t *testing.T) {
	sim := startSim(t)
	url := natsURL(t)
	b := newManager(t, sim, 0, 1, 2, 3)
	publish(t, connect(t, url), "n2", b, WithInterval(tick))
	ncW := connect(t, url)
	publish(t, ncW, "w1", nil, WithInterval(tick))
	publish(t, connect(t, url), "w2", nil, WithInterval(tick))
	v := newView(t, ncW, "w1", nil, WithInterval(tick))
	var s manager.Snapshot
	poll.UntilState(t, wait, "n2's four shards and w2", func() (bool, string) {
		v.SnapshotInto(&s)
		_, ok := nodeOf(&s, "w2")
		return ok && s.Totals.Ready == 4, summary(&s)
	})
	w1, _ := nodeOf(&s, "w1")
	w2, _ := nodeOf(&s, "w2")
	if !w1.Self || !w1.WatchOnly || !w2.WatchOnly || w2.Shards != 0 || len(s.Nodes) != 3 {
		t.Errorf("nodes = %+v", s.Nodes)
	}
	if v.ShardDetailInto(manager.ShardKey{ID: 1, Count: 4}, &manager.ShardDetail{}) {
		t.Error("ShardDetailInto of a remote shard = true")
	}
	ch, stop := v.Subscribe(8)
	stop()
	select {
	case e, ok := <-ch:
		t.Errorf("watch-only Subscribe delivered %v, %v", e, ok)
	default:
	}
	if err := v.CloseShard(ctxT(t, 5*time.Second), 1); err != nil {
		t.Fatalf("CloseShard(1) from a watch-only view: %v", err)
	}
	poll.Until(t, wait, "shard 1 closed on n2", func() bool {
		sh, _ := shardOf(ptr(b.Snapshot()), 1)
		return sh.State == gateway.StateClosed
	})
	if err := v.CloseShard(ctxT(t, 5*time.Second), 7); !errors.Is(err, manager.ErrUnknownShard) {
		t.Errorf("CloseShard(7) = %v, want ErrUnknownShard", err)
	}
	// A watch-only node refuses actions.
	err := v.request(ctxT(t, 5*time.Second), "w2", actionRequest{Op: opClose, ID: ptr(1)}, 1)
	if !errors.Is(err, ErrWatchOnly) || !strings.Contains(err.Error(), "node w2") {
		t.Errorf("action on watch-only w2 = %v, want ErrWatchOnly naming w2", err)
	}
}

// TestActionRequestsValidated: bad requests get an error reply naming the
// problem, and the manager is not touched.
func TestActionRequestsValidated(t *testing.T) {
	sim := startSim(t)
	url := natsURL(t)
	b := newManager(t, sim, 0, 1)
	publish(t, connect(t, url), "n2", b, WithInterval(time.Hour))
	nc := connect(t, url)
	cases := map[string]string{
		`{not json`:                   "bad action request",
		`{"op":"explode","id":1}`:     `unknown op "explode"`,
		`{"op":"close","id":-3}`:      "negative shard id -3",
		`{"op":"close"}`:              "missing shard id",
		`{"op":"split","id":0,"k":1}`: "factor 1",
		`{"op":"reshard","count":-1}`: "negative count -1",
		`{"op":"close","id":7}`:       "unknown shard",
	}
	for req, want := range cases {
		msg, err := nc.Request("shardtop.cluster.action.n2", []byte(req), 5*time.Second)
		if err != nil {
			t.Fatalf("request %s: %v", req, err)
		}
		var rep actionReply
		if err := json.Unmarshal(msg.Data, &rep); err != nil {
			t.Fatalf("reply to %s: %q: %v", req, msg.Data, err)
		}
		if !strings.Contains(rep.Error, want) {
			t.Errorf("reply to %s = %+v, want an error containing %q", req, rep, want)
		}
	}
	if s := b.Snapshot(); s.Totals.Ready != 2 {
		t.Errorf("after bad requests: %d of 2 Ready", s.Totals.Ready)
	}
}

// TestPublishedSnapshotHasNoToken: what goes on the wire never holds the
// token (nor a session ID).
func TestPublishedSnapshotHasNoToken(t *testing.T) {
	sim := startSim(t)
	url := natsURL(t)
	b := newManager(t, sim, 0, 1)
	nc := connect(t, url)
	got := make(chan *nats.Msg, 4)
	sub, err := nc.ChanSubscribe("shardtop.cluster.>", got)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	publish(t, connect(t, url), "n2", b, WithInterval(tick))
	sess := b.Snapshot().Shards[0].SessionID
	select {
	case m := <-got:
		if strings.Contains(string(m.Data), testToken) || sess == "" || strings.Contains(string(m.Data), sess) {
			t.Errorf("snapshot holds the token or session %q: %s", sess, m.Data)
		}
	case <-time.After(wait):
		t.Fatal("no snapshot published")
	}
}

// TestHandOffShowsOneRow: two nodes reporting the same shard key (a
// hand-off) give one row: the Ready one, else the most recent.
func TestHandOffShowsOneRow(t *testing.T) {
	nc := connect(t, natsURL(t))
	v := newView(t, nc, "watch", nil)
	send := func(node string, shards ...wireShard) {
		t.Helper()
		data, err := json.Marshal(wireSnapshot{Node: node, At: time.Now().UnixMilli(), Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(snapshotSubject(DefaultPrefix, node), data); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UnixMilli()
	send("old", wireShard{ID: 1, Count: 4, State: uint8(gateway.StateReady), Since: now - 5000},
		wireShard{ID: 2, Count: 4, State: uint8(gateway.StateReconnecting), Since: now - 5000})
	send("new", wireShard{ID: 1, Count: 4, State: uint8(gateway.StateIdentifying), Since: now},
		wireShard{ID: 2, Count: 4, State: uint8(gateway.StateConnecting), Since: now})
	var s manager.Snapshot
	poll.UntilState(t, wait, "both nodes heard", func() (bool, string) {
		v.SnapshotInto(&s)
		return len(s.Nodes) == 3, summary(&s)
	})
	if len(s.Shards) != 2 || s.Shards[0].Node != "old" || s.Shards[0].State != gateway.StateReady ||
		s.Shards[1].Node != "new" || s.Shards[1].State != gateway.StateConnecting {
		t.Errorf("rows = %s, want 1/4@old Ready (Ready wins), 2/4@new Connecting (most recent wins)", summary(&s))
	}
	if s.Totals.Total != 2 || s.Totals.Ready != 1 {
		t.Errorf("totals = %+v, want 2 shards, 1 Ready", s.Totals)
	}
}

// TestBigSnapshotGoesCompressed: a 1000-shard node's snapshot goes out
// S2-compressed, small, and a view reads it whole; a corrupt compressed
// one is logged and ignored.
func TestBigSnapshotGoesCompressed(t *testing.T) {
	url := natsURL(t)
	var logs logBuf
	nc := connect(t, url)
	v := newView(t, nc, "watch", nil, WithLogger(logs.logger()))
	got := make(chan *nats.Msg, 4)
	sub, err := nc.ChanSubscribe(snapshotSubject(DefaultPrefix, "big"), got)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	publish(t, connect(t, url), "big", newBigSource(1000), WithInterval(tick))
	select {
	case m := <-got:
		if m.Header.Get(encodingHeader) != encodingS2 || len(m.Data) > 64<<10 {
			t.Errorf("1000-shard snapshot: encoding %q, %d bytes; want s2 under 64 KiB", m.Header.Get(encodingHeader), len(m.Data))
		}
	case <-time.After(wait):
		t.Fatal("no snapshot")
	}
	var s manager.Snapshot
	poll.UntilState(t, wait, "1000 shards of node big", func() (bool, string) {
		v.SnapshotInto(&s)
		return len(s.Shards) == 1000 && s.Totals.Ready == 1000, fmt.Sprint(len(s.Shards))
	})
	if sh := s.Shards[999]; sh.Key != (manager.ShardKey{ID: 999, Count: 1000}) || sh.Node != "big" || sh.Guilds != 1999 ||
		sh.SmoothedLatency != 43*time.Millisecond || sh.QueuePos != -1 || sh.LastCloseCode != 4000 || !sh.Resumable {
		t.Errorf("shard 999 after the wire = %+v", sh)
	}
	bad := &nats.Msg{Subject: snapshotSubject(DefaultPrefix, "corrupt"), Header: nats.Header{}, Data: []byte("\xff\xff garbage")}
	bad.Header.Set(encodingHeader, encodingS2)
	if err := nc.PublishMsg(bad); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, wait, "corrupt snapshot logged", func() bool {
		return strings.Contains(logs.String(), "subject="+bad.Subject)
	})
	v.SnapshotInto(&s)
	if _, ok := nodeOf(&s, "corrupt"); ok {
		t.Errorf("corrupt node listed: %+v", s.Nodes)
	}
}

// TestOptionsValidated: bad names and options are refused, naming them.
func TestOptionsValidated(t *testing.T) {
	nc := connect(t, natsURL(t))
	for _, node := range []string{"", "a.b", "a*", "a>", "a b"} {
		if _, err := Publish(nc, node, nil); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "Publish") {
			t.Errorf("Publish(%q) = %v, want ErrInvalidOption", node, err)
		}
		if _, err := NewView(nc, node, nil); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("NewView(%q) = %v, want ErrInvalidOption", node, err)
		}
	}
	for name, o := range map[string]Option{"WithPrefix": WithPrefix(""), "WithInterval": WithInterval(0),
		"WithGoneAfter": WithGoneAfter(-1), "WithActionTimeout": WithActionTimeout(0)} {
		if _, err := NewView(nc, "n1", nil, o); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: NewView = %v, want ErrInvalidOption naming it", name, err)
		}
	}
}

// TestRemoteSplit: a split asked through another node's view runs on the
// owner with the factor given.
func TestRemoteSplit(t *testing.T) {
	sim := startSim(t)
	url := natsURL(t)
	a := newManager(t, sim, 0, 1)
	b := newManager(t, sim, 2, 3)
	ncA := connect(t, url)
	publish(t, ncA, "n1", a, WithInterval(tick))
	publish(t, connect(t, url), "n2", b, WithInterval(tick))
	v := newView(t, ncA, "n1", a, WithInterval(tick))
	var s manager.Snapshot
	poll.UntilState(t, wait, "four shards", func() (bool, string) {
		v.SnapshotInto(&s)
		return s.Totals.Ready == 4, summary(&s)
	})
	if err := v.SplitShard(ctxT(t, 20*time.Second), 3, 2); err != nil {
		t.Fatalf("SplitShard(3, 2) through n1: %v", err)
	}
	poll.UntilState(t, wait, "3/8 and 7/8 Ready on n2 in the view", func() (bool, string) {
		v.SnapshotInto(&s)
		var n int
		for _, sh := range s.Shards {
			if (sh.Key == manager.ShardKey{ID: 3, Count: 8} || sh.Key == manager.ShardKey{ID: 7, Count: 8}) &&
				sh.Node == "n2" && sh.State == gateway.StateReady && sh.Role == manager.RoleActive {
				n++
			}
		}
		return n == 2, summary(&s)
	})
}
