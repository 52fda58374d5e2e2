package shardlease

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
)

func TestDecodeRejectsBadRecords(t *testing.T) {
	k := Key{1, 2}
	good := `{"v":1,"owner":"n","epoch":2,"session":{"id":"s","seq":3,"resume_url":"wss://x/","guilds":4,"updated_at":"2026-01-02T03:04:05Z"}}`
	v, err := decode(k, []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if v.owner != "n" || v.epoch != 2 || v.session.SessionID != "s" || v.session.Sequence != 3 ||
		v.session.ShardID != 1 || v.session.ShardCount != 2 || v.session.Guilds != 4 ||
		!v.session.UpdatedAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("decoded %+v", v)
	}
	back, err := encode(v)
	if err != nil {
		t.Fatal(err)
	}
	if v2, err := decode(k, back); err != nil || v2 != v {
		t.Fatalf("round trip: %+v, %v; want %+v", v2, err, v)
	}
	for _, c := range []struct{ name, value, want string }{
		{"not JSON", `garbage`, "not a JSON"},
		{"empty", ``, "not a JSON"},
		{"wrong type", `{"v":1,"owner":5}`, "not a JSON"},
		{"version", `{"v":2,"owner":""}`, "version 2"},
		{"no version", `{"owner":""}`, "version 0"},
		{"unknown field", `{"v":1,"owner":"","extra":1}`, "unknown field"},
		{"trailing", `{"v":1,"owner":""} {}`, "trailing"},
		{"negative seq", `{"v":1,"owner":"n","session":{"id":"s","seq":-1}}`, "sequence"},
		{"empty session ID", `{"v":1,"owner":"n","session":{"id":"","seq":1}}`, "session ID"},
		{"bad resume URL", `{"v":1,"owner":"n","session":{"id":"s","resume_url":"http://x"}}`, "resume URL"},
		{"negative guilds", `{"v":1,"owner":"n","session":{"id":"s","guilds":-1}}`, "guilds"},
		{"long owner", `{"v":1,"owner":"` + strings.Repeat("n", maxNodeLen+1) + `"}`, "owner"},
		{"huge", `{"v":1,"owner":"` + strings.Repeat("x", maxValueSize) + `"}`, "bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := decode(k, []byte(c.value))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("decode %q: %v, want an error saying %q", c.value, err, c.want)
			}
		})
	}
	for _, s := range []string{"1", "1.", ".2", "a.b", "01.2", "2.2", "-1.2", "1.0", "1.65537"} {
		if _, err := parseKey(s); err == nil {
			t.Errorf("parseKey(%q) accepted", s)
		}
	}
}

// A value that is not a lease record is reported, naming its key, counted as
// held and never overwritten.
func TestMalformedRecordIsReportedAndKept(t *testing.T) {
	s := natstest.Start(t)
	a := process(t, s, "node-a")
	k := Key{0, 3}
	junk := []byte(`{"v":9,"owner":"future-node"}`)
	if _, err := a.kv.Put(ctxT(t, 10*time.Second), k.String(), junk); err != nil {
		t.Fatal(err)
	}
	if _, err := a.kv.Put(ctxT(t, 10*time.Second), "not-a-shard", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A Table opened now reads it in its initial view; a's sees it on its watch.
	b := process(t, s, "node-b")
	for _, tb := range []*Table{a, b} {
		poll.Until(t, poll.Timeout, tb.node+" sees the record", func() bool { _, ok := recordOf(tb, k); return ok })
		r, _ := recordOf(tb, k)
		var me *MalformedError
		if !errors.As(r.Err, &me) || me.Key != "0.3" || !strings.Contains(r.Err.Error(), `"0.3"`) {
			t.Fatalf("%s: record error %v, want a *MalformedError naming key 0.3", tb.node, r.Err)
		}
		if r.Expired {
			t.Fatalf("%s: a malformed record counts as expired", tb.node)
		}
		_, err := tb.Acquire(ctxT(t, 10*time.Second), k)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "0.3") {
			t.Fatalf("%s: acquire of a malformed record: %v, want ErrMalformed naming it", tb.node, err)
		}
	}
	if n := len(b.Records()); n != 1 {
		t.Fatalf("%d records, want 1 (the key that is not a shard's is ignored)", n)
	}
	e, err := a.kv.Get(ctxT(t, 10*time.Second), k.String())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Value(), junk) {
		t.Fatalf("the malformed value was overwritten with %q", e.Value())
	}
	// A record already taken by someone else while a's view lagged: the
	// compare-and-set fails, the fresh read finds it malformed.
	k2 := Key{1, 3}
	if _, err := a.kv.Create(ctxT(t, 10*time.Second), k2.String(), junk); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctxT(t, 10*time.Second), k2); !errors.Is(err, ErrMalformed) {
		t.Fatalf("acquire of a record created behind the view: %v, want ErrMalformed", err)
	}
	if e, err := a.kv.Get(ctxT(t, 10*time.Second), k2.String()); err != nil || !bytes.Equal(e.Value(), junk) {
		t.Fatalf("the malformed value of %s: %v, %v", k2, e, err)
	}
}
