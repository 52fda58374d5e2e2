package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"

	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
)

// TestTailProcess runs `shardtop tail` as README shows it, beside a bus
// (here a NATS server with the contract's stream): it prints a published
// event as a JSON line on stdout and exits 0 on SIGINT.
func TestTailProcess(t *testing.T) {
	s := natstest.Start(t)
	js := natstest.JetStream(t, s.ClientURL())
	natstest.CreateStream(t, js, natstest.Stream, natstest.Prefix)

	p := startProc(t, "tail", "--bus-url", s.ClientURL(), "--event", "MESSAGE_CREATE")
	poll.UntilState(t, poll.Timeout, "tail to watch", func() (bool, string) {
		return strings.Contains(p.stderr.String(), "watching shardtop.ev.MESSAGE_CREATE.* shardtop.ev.SHARDTOP_LOST.*"), p.stderr.String()
	})
	natstest.Publish(t, js, natstest.MessageCreate(3, 4, "sess", 7, "4194304000"))
	poll.UntilState(t, poll.Timeout, "a line on stdout", func() (bool, string) {
		return strings.HasSuffix(p.stdout.String(), "\n"), p.stdout.String()
	})
	var line struct {
		Subject string `json:"subject"`
		Seq     int    `json:"seq"`
		D       struct {
			Content string `json:"content"`
		} `json:"d"`
	}
	if err := json.Unmarshal([]byte(p.stdout.String()), &line); err != nil {
		t.Fatalf("stdout is not one JSON line: %v\n%s", err, p.stdout.String())
	}
	if line.Subject != "shardtop.ev.MESSAGE_CREATE.3" || line.Seq != 7 || line.D.Content != "message 7" {
		t.Errorf("line %+v, want MESSAGE_CREATE of shard 3, seq 7, content \"message 7\"", line)
	}
	p.signal(t, syscall.SIGINT)
	assertExit(t, p, exitOK)
}

// TestTailProcessCannotConnect: exit 1, naming the URL.
func TestTailProcessCannotConnect(t *testing.T) {
	p := startProc(t, "tail", "--bus-url", "nats://127.0.0.1:1")
	assertExit(t, p, exitFailure, "shardtop tail: cannot connect to nats://127.0.0.1:1")
}
