package shardowner

import (
	"fmt"
	"testing"
)

func TestTargets(t *testing.T) {
	cases := []struct {
		nodes []string
		count int
		want  string
	}{
		{nil, 4, "[]"},
		{[]string{"a"}, 0, "[]"},
		{[]string{"a"}, 3, "[a a a]"},
		{[]string{"b", "a"}, 4, "[a a b b]"},
		{[]string{"a", "b", "a"}, 4, "[a a b b]"},
		{[]string{"c", "a", "b"}, 6, "[a a b b c c]"},
		{[]string{"c", "a", "b"}, 7, "[a a b b c c c]"},
		{[]string{"a", "b", "c", "d", "e"}, 3, "[b d e]"},
		{[]string{"", "a"}, 2, "[a a]"},
	}
	for _, c := range cases {
		got := fmt.Sprint(Targets(c.nodes, c.count))
		if got != c.want {
			t.Errorf("Targets(%q, %d) = %s, want %s", c.nodes, c.count, got, c.want)
		}
	}
}

// Every shard has exactly one target and the shares differ by at most one,
// whatever the order of the names.
func TestTargetsEven(t *testing.T) {
	for n := 1; n <= 7; n++ {
		for count := 1; count <= 20; count++ {
			var nodes []string
			for i := n - 1; i >= 0; i-- {
				nodes = append(nodes, fmt.Sprintf("node-%d", i))
			}
			tg := Targets(nodes, count)
			share := map[string]int{}
			for id, node := range tg {
				if node == "" {
					t.Fatalf("n=%d count=%d: shard %d has no target", n, count, id)
				}
				share[node]++
			}
			lo, hi := count, 0
			for _, node := range nodes {
				lo, hi = min(lo, share[node]), max(hi, share[node])
			}
			if hi-lo > 1 || (count >= n && lo == 0) {
				t.Fatalf("n=%d count=%d: shares %v not even", n, count, share)
			}
		}
	}
}
