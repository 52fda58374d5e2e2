package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// TestAgainstRealManager drives the UI over a real manager whose shards talk
// to discordsim over loopback: close, resume (the `r` key must be offered
// for a closed shard with a session) and split, each through keys and the
// commands they return.
func TestAgainstRealManager(t *testing.T) {
	const token = "sim-token-secret-0123456789"
	sim, err := discordsim.Start(discordsim.Config{
		Token: token, Shards: 2, MaxConcurrency: 1, IdentifyWindow: 30 * time.Millisecond,
		HeartbeatInterval: 300 * time.Millisecond, Guilds: 20, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mgr, err := manager.New(token,
		manager.WithAPIURL(sim.APIURL()),
		manager.WithIdentifyWindow(30*time.Millisecond),
		manager.WithIdentifyMargin(25*time.Millisecond),
		manager.WithSampleInterval(50*time.Millisecond),
		manager.WithGatewayOptions(
			gateway.WithCompression(gateway.CompressionNone),
			gateway.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
			gateway.WithHandshakeTimeout(2*time.Second)),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_ = mgr.Close(cctx)
	}()
	if err := mgr.Open(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := New(mgr, WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Update(tickMsg{})
	m.Update(windowSize(120, 40))

	// until refreshes until the stripped view contains every want.
	until := func(what string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			m.Update(tickMsg{})
			v := ansi.Strip(m.View())
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(v, w)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; view:\n%s", what, v)
			}
			time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
		}
	}
	until("both shards ready", "READY 2/2")

	selectKey(t, m, 0, 2)
	runCmd(t, m, press(m, "c"))
	if s := m.statusLine(); !strings.Contains(s, "✓ closed 0/2") {
		t.Fatalf("status after c: %q", s)
	}
	until("shard 0 closed", "READY 1/2", "→ closed")
	if !m.keys.Resume.Enabled() || !m.keys.Open.Enabled() || m.keys.Close.Enabled() {
		t.Fatalf("keys for a closed shard with a session: resume %v open %v close %v",
			m.keys.Resume.Enabled(), m.keys.Open.Enabled(), m.keys.Close.Enabled())
	}
	runCmd(t, m, press(m, "r"))
	if s := m.statusLine(); !strings.Contains(s, "✓ resumed 0/2") {
		t.Fatalf("status after r: %q", s)
	}
	until("shard 0 resumed", "READY 2/2")

	selectKey(t, m, 1, 2)
	press(m, "s")
	runCmd(t, m, press(m, "y"))
	if s := m.statusLine(); !strings.Contains(s, "✓ split 1/2 into 1/4, 3/4") {
		t.Fatalf("status after split: %q", s)
	}
	until("split shards ready", "1/4", "3/4", "READY 3/3")
}
