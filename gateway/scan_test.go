package gateway

import (
	"errors"
	"testing"
)

func TestScanEnvelopeKeyOrders(t *testing.T) {
	cases := []struct {
		in     string
		op     int
		seq    int64
		hasSeq bool
		t, d   string
	}{
		{`{"op":0,"d":{"a":[1,2,{"b":"}"}]},"s":42,"t":"MESSAGE_CREATE"}`, 0, 42, true, "MESSAGE_CREATE", `{"a":[1,2,{"b":"}"}]}`},
		{`{"t":"READY","s":1,"op":0,"d":{"x":"y\"z"}}`, 0, 1, true, "READY", `{"x":"y\"z"}`},
		{` { "d" : null , "op" : 11 , "s" : null , "t" : null } `, 11, 0, false, "", `null`},
		{`{"op":10,"d":{"heartbeat_interval":41250}}`, 10, 0, false, "", `{"heartbeat_interval":41250}`},
		{`{"op":9,"d":false,"extra":[{"nested":true}],"s":null}`, 9, 0, false, "", `false`},
		{`{"s":7,"d":"a\\","op":0,"t":"X"}`, 0, 7, true, "X", `"a\\"`},
	}
	for _, c := range cases {
		var e envelope
		if err := scanEnvelope([]byte(c.in), &e); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if e.op != c.op || e.seq != c.seq || e.hasSeq != c.hasSeq || string(e.t) != c.t || string(e.d) != c.d {
			t.Errorf("%s: got op=%d seq=%d/%v t=%q d=%q", c.in, e.op, e.seq, e.hasSeq, e.t, e.d)
		}
	}
}

func TestScanEnvelopeRejects(t *testing.T) {
	bad := []string{
		``, `[]`, `{`, `{"op":}`, `{"op":1`, `{"op":"1"}`, `{"d":1}`, `{"op":1,}`, `{"op":1}x`,
		`{"op":0,"d":{"a":[}]}`, `{"op":0,"d":"unterminated}`, `{"op":0,"s":1.5}`, `{"op":0,"t":5}`,
		`{"op":0,"d":tru}`, `{"op":99999999999999999999999}`, `{"op":0,"d":-}`,
	}
	for _, b := range bad {
		var e envelope
		err := scanEnvelope([]byte(b), &e)
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%q: want *DecodeError, got %v", b, err)
		}
	}
}

func TestScanDeepNesting(t *testing.T) {
	b := []byte(`{"op":0,"d":`)
	for range maxDepth + 1 {
		b = append(b, '[')
	}
	var e envelope
	if err := scanEnvelope(b, &e); err == nil {
		t.Fatal("want error for over-deep nesting")
	}
}

func TestScanAllocations(t *testing.T) {
	frame := []byte(`{"t":"MESSAGE_CREATE","s":12,"op":0,"d":{"id":"1","content":"hello \"world\"","embeds":[{"a":1}]}}`)
	allocs := testing.AllocsPerRun(100, func() {
		var e envelope
		if err := scanEnvelope(frame, &e); err != nil {
			t.Fatal(err)
		}
		_, _ = eventName(e.t)
	})
	if allocs != 0 {
		t.Fatalf("scan + intern allocates %.1f times, want 0", allocs)
	}
}

func TestUnquoteAndSnowflake(t *testing.T) {
	if s, ok := unquote([]byte(`"ws:\/\/x\/gateway-resume"`)); !ok || s != "ws://x/gateway-resume" {
		t.Fatalf("unquote: %q %v", s, ok)
	}
	if v, ok := parseSnowflake([]byte(`"175928847299117063"`)); !ok || v != 175928847299117063 {
		t.Fatalf("snowflake: %d %v", v, ok)
	}
	if _, ok := parseSnowflake([]byte(`"x"`)); ok {
		t.Fatal("bad snowflake accepted")
	}
}

func FuzzScanEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"op":0,"d":{"a":[1,2,{"b":"}"}]},"s":42,"t":"MESSAGE_CREATE"}`,
		`{"op":10,"d":{"heartbeat_interval":41250}}`,
		`{"op":11,"d":null}`, `{"op":9,"d":false}`, `{"op":0,"d":"\\\"","s":1,"t":"READY"}`,
		string(sampleMessageCreate(1)), string(sampleReady()),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e envelope
		if err := scanEnvelope(b, &e); err == nil {
			if e.d != nil {
				_ = eachField(e.d, func(k, v []byte) bool { return true })
				_ = eachElement(e.d, func([]byte) {})
			}
		}
	})
}
