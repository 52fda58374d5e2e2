package bus

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/internal/poll"
)

// TestBurstReachesConsumerExactlyOnce: 100,000 events over 8 shards reach
// a durable consumer once each, in each shard's order, with the contract's
// subjects, headers and bodies.
func TestBurstReachesConsumerExactlyOnce(t *testing.T) {
	const shards, perShard = 8, 12_500
	ns := startNATS(t)
	// A full buffer only slows the shards down (the stream under -race
	// can take seconds to make room): a clean burst holds no shard.
	b := newTestBus(t, ns.connect(t), WithBufferWait(time.Minute))
	// Discord's own heartbeat interval: the simulator answers a heartbeat
	// after the chunk of the burst it is writing, and a shard that reads
	// its 12 MB slower than one interval (-race, loaded CI) would take the
	// late ACK for a zombie connection, reconnect and cut the burst short.
	sim := startSim(t, discordsim.Config{Shards: shards, MaxConcurrency: shards, Guilds: 64,
		HeartbeatInterval: 41250 * time.Millisecond, ReplayBuffer: perShard + 1000})

	m := newTestManager(t, sim, b)

	c := collect(t, ns.connect(t), "burst")
	openReady(t, m)

	for id := range shards {
		if n := sim.Burst(id, perShard); n != 1 {
			t.Fatalf("Burst(%d) hit %d connections", id, n)
		}
	}
	poll.UntilState(t, 90*time.Second, "every MESSAGE_CREATE in the consumer", func() (bool, string) {
		return c.count("MESSAGE_CREATE") >= shards*perShard, fmt.Sprintf("%s\nbus: %+v", describe(c.all()), b.Stats())
	})
	poll.Until(t, poll.Timeout, "the bus to have nothing in flight", func() bool { return b.Stats().InFlight == 0 })

	events := c.all()
	byShard := checkExactlyOnce(t, events)
	if got := c.count("MESSAGE_CREATE"); got != shards*perShard {
		t.Errorf("%d MESSAGE_CREATE, want %d", got, shards*perShard)
	}
	if len(byShard) != shards {
		t.Errorf("events of %d shards, want %d:\n%s", len(byShard), shards, describe(events))
	}
	for _, e := range events {
		id := e.shard[:strings.IndexByte(e.shard, '/')]
		if want := "shardtop.ev." + e.name + "." + id; e.subject != want {
			t.Fatalf("subject %q, want %q", e.subject, want)
		}
		if e.shard != id+"/"+strconv.Itoa(shards) || e.session == "" || e.seq < 1 {
			t.Fatalf("headers %v", e.header)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.header.Get(HeaderReceived)); err != nil {
			t.Fatalf("%s: %v", HeaderReceived, err)
		}
		if e.name == "GUILD_CREATE" && (e.guild == "" || !bytes.Contains(e.data, []byte(`"id":"`+e.guild+`"`))) {
			t.Fatalf("GUILD_CREATE with guild header %q and body %.200s", e.guild, e.data)
		}
		if e.name == "MESSAGE_CREATE" {
			g := `"guild_id":"` + e.guild + `"`
			if e.guild == "" || !bytes.Contains(e.data, []byte(g)) || e.data[0] != '{' {
				t.Fatalf("MESSAGE_CREATE with guild header %q and body %.200s", e.guild, e.data)
			}
		}
	}
	st := b.Stats()
	if st.Failed != 0 || st.Refused != 0 || st.Lost != 0 || st.Held != 0 {
		t.Errorf("stats after a clean burst: %+v", st)
	}
	if st.Acked != st.Published || st.Published != uint64(len(events)) {
		t.Errorf("published %d, acked %d, consumer read %d", st.Published, st.Acked, len(events))
	}
}
