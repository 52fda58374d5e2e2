package app

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/shardtop/shardtop/discordsim"
)

// TestDemoSimHeartbeat dials the --demo simulator and reads its Hello: the
// heartbeat is lively (so LATENCY shows within seconds), while the identify
// window stays Discord's real 5 s.
func TestDemoSimHeartbeat(t *testing.T) {
	if cfg := demoSimConfig(); cfg.IdentifyWindow != discordsim.DefaultIdentifyWindow || discordsim.DefaultIdentifyWindow != 5*time.Second {
		t.Errorf("demo identify window %s (default %s), want Discord's 5s", cfg.IdentifyWindow, discordsim.DefaultIdentifyWindow)
	}
	sim, err := startDemoSim()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	ws, _, err := websocket.DefaultDialer.Dial(sim.GatewayURL()+"?v=10&encoding=json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var hello struct {
		Op int `json:"op"`
		D  struct {
			HeartbeatInterval int64 `json:"heartbeat_interval"`
		} `json:"d"`
	}
	if err := ws.ReadJSON(&hello); err != nil {
		t.Fatalf("reading Hello: %v", err)
	}
	if hello.Op != 10 {
		t.Fatalf("first payload op %d, want 10 (Hello)", hello.Op)
	}
	got := time.Duration(hello.D.HeartbeatInterval) * time.Millisecond
	if got < time.Second || got > 10*time.Second {
		t.Errorf("demo heartbeat_interval %s, want 1s..10s (Discord's %s makes LATENCY \"-\" for half a minute)", got, discordsim.DefaultHeartbeatInterval)
	}
}
