package bus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestParsePubAckReadsTheServersAnswers: the answers a real server gives
// to a publish (new, duplicate, refused, no stream) are read as the
// server meant them, by the fast path and the decoding one alike.
func TestParsePubAckReadsTheServersAnswers(t *testing.T) {
	ns := startNATS(t)
	nc := ns.connect(t)
	newTestBus(t, nc) // makes the stream
	answer := func(m *nats.Msg) *nats.Msg {
		t.Helper()
		m.Reply = nats.NewInbox()
		// As the bus hears them: a callback's messages, status ones too.
		ch := make(chan *nats.Msg, 1)
		sub, err := nc.ChanSubscribe(m.Reply, ch)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-ch:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no answer")
			return nil
		}
	}
	event := func(id string, extra ...string) *nats.Msg {
		h := nats.Header{jetstream.MsgIDHeader: {id}}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return &nats.Msg{Subject: "shardtop.ev.MESSAGE_CREATE.0", Header: h, Data: []byte(`{}`)}
	}

	first := answer(event("s:1"))
	seq, dup, err := parsePubAck(first)
	if err != nil || dup || seq != 1 {
		t.Fatalf("first publish %s: seq %d, dup %v, err %v", first.Data, seq, dup, err)
	}
	again := answer(event("s:1"))
	if seq, dup, err := parsePubAck(again); err != nil || !dup || seq != 1 {
		t.Fatalf("duplicate %s: seq %d, dup %v, err %v", again.Data, seq, dup, err)
	}
	refused := answer(event("s:2", "Nats-Expected-Last-Sequence", "99"))
	if _, _, err := parsePubAck(refused); err == nil || !strings.Contains(err.Error(), "wrong last sequence") {
		t.Fatalf("refused publish %s: err %v", refused.Data, err)
	}
	none := answer(&nats.Msg{Subject: "nostream.here", Data: []byte(`{}`)})
	if _, _, err := parsePubAck(none); !errors.Is(err, errNoResponders) {
		t.Fatalf("publish to no stream (%v, %q): err %v", none.Header, none.Data, err)
	}
	for _, c := range []struct {
		data string
		seq  uint64
		dup  bool
	}{
		{`{"stream":"S","domain":"hub","seq":77}`, 77, false},
		{`{"stream":"S","seq":78,"duplicate":true}`, 78, true},
		{`{"stream":"S", "seq": 79}`, 79, false}, // spaced: decoded
		{`{"seq":80,"stream":"S","duplicate":false}`, 80, false},
	} {
		seq, dup, err := parsePubAck(&nats.Msg{Data: []byte(c.data)})
		if err != nil || seq != c.seq || dup != c.dup {
			t.Errorf("%s: seq %d, dup %v, err %v", c.data, seq, dup, err)
		}
	}
	if _, _, err := parsePubAck(&nats.Msg{Data: []byte(`not json`)}); err == nil {
		t.Error("a garbled answer read as an acknowledgement")
	}
}

func TestParseReply(t *testing.T) {
	for _, c := range []struct {
		in        string
		slot, gen uint32
		seq       int64
		ok        bool
	}{
		{"3.0.17", 3, 0, 17, true},
		{"0.4294967295.9223372036854775807", 0, 4294967295, 9223372036854775807, true},
		{"3.0", 0, 0, 0, false},
		{"3..17", 0, 0, 0, false},
		{"x.0.1", 0, 0, 0, false},
		{"1.2.3.4", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		slot, gen, seq, ok := parseReply(c.in)
		if ok != c.ok || (ok && (slot != c.slot || gen != c.gen || seq != c.seq)) {
			t.Errorf("parseReply(%q) = %d, %d, %d, %v", c.in, slot, gen, seq, ok)
		}
	}
}

// TestNewRefusesAReconnectBuffer: a connection that buffers while it
// reconnects could store a shard's events out of order: New refuses it.
func TestNewRefusesAReconnectBuffer(t *testing.T) {
	ns := startNATS(t)
	nc, err := nats.Connect(ns.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if b, err := New(ctxT(t, 10*time.Second), nc); !errors.Is(err, ErrReconnectBuffer) {
		if b != nil {
			_ = b.Close()
		}
		t.Fatalf("New on a buffering connection: %v, want ErrReconnectBuffer", err)
	}
}
