package config

import (
	"strings"
	"testing"
	"time"
)

func TestClusterConfigDefaults(t *testing.T) {
	cfg, err := Parse("shardtop.toml", "")
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Cluster
	if cl.Enabled || cl.Node != "" || cl.Ownership != "" || time.Duration(cl.LeaseTTL) != 15*time.Second || cl.WatchOnly {
		t.Errorf("default [cluster] = %+v", cl)
	}
	if got := cfg.OwnershipMode(); got != OwnershipBalanced {
		t.Errorf("ownership without shard_ids = %q, want balanced", got)
	}
	if name := cl.NodeName(); name == "" || !nodeName.MatchString(name) {
		t.Errorf("NodeName() from the host name = %q, not a valid node name", name)
	}
}

func TestClusterConfigValues(t *testing.T) {
	cfg, err := Parse("shardtop.toml", `shard_count = 192
shard_ids = "0-63"
[cluster]
enabled = true
node = "machine-a_1"
lease_ttl = "5s"
`)
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Cluster
	if !cl.Enabled || cl.NodeName() != "machine-a_1" || time.Duration(cl.LeaseTTL) != 5*time.Second {
		t.Errorf("[cluster] = %+v", cl)
	}
	if got := cfg.OwnershipMode(); got != OwnershipFixed {
		t.Errorf("ownership with shard_ids = %q, want fixed", got)
	}
}

func TestClusterConfigErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"node", "[cluster]\nnode = \"a.b\"\n", "shardtop.toml:2: cluster.node: must be 1 to 64 letters"},
		{"ownership", "[cluster]\nownership = \"even\"\n", "shardtop.toml:2: cluster.ownership: must be fixed or balanced"},
		{"balanced with ids", "shard_count = 8\nshard_ids = [1]\n[cluster]\nownership = \"balanced\"\n", "shardtop.toml:4: cluster.ownership: balanced divides"},
		{"ttl", "[cluster]\nlease_ttl = \"100ms\"\n", "shardtop.toml:2: cluster.lease_ttl: must be at least 1s"},
		{"bus off", "shard_count = 8\n[bus]\nmode = \"off\"\n[cluster]\nenabled = true\n", "shardtop.toml:5: cluster.enabled: a cluster shares its state through NATS"},
		{"no count", "[cluster]\nenabled = true\n", "shardtop.toml:2: cluster.enabled: every process of a cluster must agree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("shardtop.toml", tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// A watch-only process needs no layout of its own.
	if _, err := Parse("shardtop.toml", "[cluster]\nenabled = true\nwatch_only = true\n"); err != nil {
		t.Errorf("watch_only without shard_count: %v", err)
	}
}
