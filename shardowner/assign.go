package shardowner

import "slices"

// Targets returns, for every shard ID 0..count-1, the node that should run it
// when nodes are the live nodes of a balanced bot: the names are sorted and
// deduplicated, and node j of n gets the contiguous IDs [j·count/n,
// (j+1)·count/n), so shares differ by at most one. It returns nil when
// nodes is empty or count is not positive.
func Targets(nodes []string, count int) []string {
	ns := slices.Clone(nodes)
	slices.Sort(ns)
	ns = slices.Compact(ns)
	if len(ns) > 0 && ns[0] == "" {
		ns = ns[1:]
	}
	if len(ns) == 0 || count <= 0 {
		return nil
	}
	out := make([]string, count)
	n := len(ns)
	for j, node := range ns {
		for id := j * count / n; id < (j+1)*count/n; id++ {
			out[id] = node
		}
	}
	return out
}
