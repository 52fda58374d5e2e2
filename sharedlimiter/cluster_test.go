package sharedlimiter

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/shardtop/shardtop/internal/natstest"
	"github.com/shardtop/shardtop/internal/poll"
)

// startCluster runs n embedded servers as one JetStream cluster and
// returns their client URLs, comma-separated.
func startCluster(tb testing.TB, n int) string {
	url, _ := startClusterServers(tb, n)
	return url
}

// startClusterServers is startCluster that also returns the servers.
func startClusterServers(tb testing.TB, n int) (string, []*server.Server) {
	servers := natstest.StartCluster(tb, n)
	return natstest.ClusterURLs(servers), servers
}

func TestBucketsSharedOnAnR3Cluster(t *testing.T) {
	urls := startCluster(t, 3)
	const maxConc, shards = 2, 12
	list := strings.Split(urls, ",")
	ls := make([]*Limiter, 3)
	for i := range ls {
		// Each process talks to its own server of the cluster.
		ls[i], _ = procAt(t, list[i], maxConc, WithReplicas(3), WithNode(fmt.Sprintf("p%d", i)))
	}
	ls[0].SetSessionStartLimit(1000, 1000, time.Hour)
	poll.Until(t, poll.Timeout, "all see the budget", func() bool {
		for _, l := range ls {
			if l.Snapshot().Budget.Remaining != 1000 {
				return false
			}
		}
		return true
	})
	grants := runShards(t, ls, shards)
	if len(grants) != shards {
		t.Fatalf("%d grants, want %d", len(grants), shards)
	}
	checkSpacing(t, grants, maxConc, testWindow)
	poll.Until(t, poll.Timeout, "the budget spent once per grant", func() bool {
		for _, l := range ls {
			if l.Snapshot().Budget.Remaining != 1000-shards {
				return false
			}
		}
		return true
	})
}

func TestStreamLeaderLossKeepsTheWindow(t *testing.T) {
	if raceEnabled {
		// nats-server v2.15.2 has a data race of its own on a stream
		// leader change (batchStagedDiff.commit vs. a reader, in
		// jetstream_batching.go), which -race reports as this test's.
		t.Skip("nats-server races internally on a leader change; run without -race")
	}
	urls, servers := startClusterServers(t, 3)
	const maxConc, shards = 2, 12
	ls := make([]*Limiter, 3)
	for i := range ls {
		// A claim lost with its server blocks its bucket for the hold limit at worst.
		ls[i], _ = procAt(t, urls, maxConc, WithReplicas(3), WithHoldLimit(2*time.Second), WithNode(fmt.Sprintf("p%d", i)))
	}
	js := natstest.JetStream(t, urls)
	done := make(chan []grant, 1)
	go func() { done <- runShards(t, ls, shards) }()
	// Once some grants are through, stop the KV stream's leader.
	poll.Until(t, poll.Timeout, "a few grants", func() bool {
		n := uint64(0)
		for _, l := range ls {
			n += l.Snapshot().Grants
		}
		return n >= 3
	})
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	st, err := js.Stream(ctx, "KV_"+DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %v", err)
	}
	for _, s := range servers {
		if s.Name() == info.Cluster.Leader {
			s.Shutdown()
			t.Logf("stopped the stream leader %s", s.Name())
		}
	}
	grants := <-done
	if len(grants) != shards {
		t.Fatalf("%d grants, want %d", len(grants), shards)
	}
	checkSpacing(t, grants, maxConc, testWindow)
}
