package shardlease

import (
	"strings"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/natstest"
)

func TestOpenRejectsBadSettings(t *testing.T) {
	s := natstest.Start(t)
	js := natstest.JetStream(t, s.ClientURL())
	for _, c := range []struct {
		name, node string
		opts       []Option
		want       string
	}{
		{"no node", "", nil, "node name"},
		{"long node", strings.Repeat("n", maxNodeLen+1), nil, "node name"},
		{"replicas", "n", []Option{WithReplicas(0)}, "replicas"},
		{"TTL", "n", []Option{WithTTL(-time.Second)}, "TTL"},
		{"margin", "n", []Option{WithTTL(time.Second), WithSafetyMargin(time.Second)}, "safety margin"},
		{"renew past the deadline", "n", []Option{WithTTL(time.Second), WithSafetyMargin(200 * time.Millisecond), WithRenewInterval(800 * time.Millisecond)}, "renew interval"},
		{"bucket", "n", []Option{WithBucket("")}, "bucket"},
		{"bucket name", "n", []Option{WithBucket("a.b")}, "a.b"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb, err := Open(ctxT(t, 10*time.Second), js, c.node, c.opts...)
			if err == nil {
				tb.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
	// The defaults are the program's: 15 s TTL, renewed every 5 s.
	tb, err := Open(ctxT(t, 10*time.Second), js, "n")
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if tb.cfg.ttl != 15*time.Second || tb.cfg.renewInterval != 5*time.Second || tb.cfg.margin != 3*time.Second || tb.cfg.bucket != "shardtop_shards" {
		t.Fatalf("defaults %+v", tb.cfg)
	}
}
