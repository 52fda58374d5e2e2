package tui

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/shardtop/shardtop/manager"
)

// clusterFixture is the fixture run by three nodes: n1 (this process), n2
// and n3, which has not been heard from for 40 s (gone). The shards go to
// the nodes in turn.
func clusterFixture() manager.Snapshot {
	s := fixture()
	names := []string{"n1", "n2", "n3"}
	for i := range s.Shards {
		s.Shards[i].Node = names[i%3]
	}
	s.Nodes = []manager.NodeInfo{
		{Name: "n1", Shards: 6, Ready: 3, Leases: 6, LastSeen: t0.Add(-time.Second), Self: true},
		{Name: "n2", Shards: 6, Ready: 6, Leases: 6, LastSeen: t0.Add(-2 * time.Second)},
		{Name: "n3", Shards: 6, Ready: 0, Leases: 6, LastSeen: t0.Add(-40 * time.Second), Gone: true},
	}
	return s
}

func clusterModel(t *testing.T, w, h int) (*Model, *fakeManager) {
	t.Helper()
	f := newFake(clusterFixture())
	f.local = "n1"
	for _, ev := range fixtureEvents() {
		f.events <- ev
	}
	return newTestModel(t, f, w, h), f
}

// plainLines is the view without styling, by line.
func plainLines(m *Model) []string { return strings.Split(ansi.Strip(m.View()), "\n") }

// lineStarting is the first line of the view starting with s, "" if none.
func lineStarting(m *Model, s string) string {
	for _, l := range plainLines(m) {
		if strings.HasPrefix(l, s) {
			return l
		}
	}
	return ""
}

// lineWith is the first line of the view holding s, "" if none.
func lineWith(m *Model, s string) string {
	for _, l := range plainLines(m) {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestClusterView: a 3-node snapshot shows the NODE column, the nodes
// panel (the gone node marked, this one marked) and the cluster in the
// header, at 120x40 and, fitting, at 80x24.
func TestClusterView(t *testing.T) {
	lipglossASCII(t)
	for _, sz := range []struct{ w, h int }{{120, 40}, {80, 24}} {
		m, _ := clusterModel(t, sz.w, sz.h)
		name := "cluster_" + itoa(sz.w) + "x" + itoa(sz.h)
		view := m.View()
		checkGolden(t, name, view, sz.h)
		checkWidth(t, view, sz.w)

		hdr := lineWith(m, "SHARD")
		if !strings.Contains(hdr, "NODE") {
			t.Errorf("%s: no NODE column: %q", name, hdr)
		}
		if row := lineWith(m, " 1/16 "); !strings.Contains(row, " n2 ") {
			t.Errorf("%s: 1/16 does not say n2: %q", name, row)
		}
		if l := lineWith(m, "NODES"); !strings.Contains(l, "3 nodes") || !strings.Contains(l, "1 gone") {
			t.Errorf("%s: nodes panel title %q", name, l)
		}
		if l := lineWith(m, "cluster"); !strings.Contains(l, "cluster 3 nodes, 1 gone") {
			t.Errorf("%s: header %q", name, l)
		}
	}
	// 120x40: a line per node.
	m, _ := clusterModel(t, 120, 40)
	if n1 := lineStarting(m, "» n1 "); !strings.Contains(n1, "ready 3/6") || !strings.Contains(n1, "this node") {
		t.Errorf("n1's line %q", n1)
	}
	if n2 := lineStarting(m, "  n2 "); !strings.Contains(n2, "seen 2s ago") || !strings.Contains(n2, "leases   6") {
		t.Errorf("n2's line %q", n2)
	}
	if n3 := lineStarting(m, "  n3 "); !strings.Contains(n3, "ready 0/6") || !strings.Contains(n3, "seen 40s ago  gone") {
		t.Errorf("n3's line %q", n3)
	}
	// 80x24: no room for a line each, the nodes share one, gone first.
	m, _ = clusterModel(t, 80, 24)
	if l := lineStarting(m, "  n3 gone"); !strings.Contains(l, "» n1 3/6  n2 6/6") {
		t.Errorf("80x24 nodes line %q", l)
	}
}

// TestLoneProcessHasNoNodes: without Nodes there is no NODE column, no
// nodes panel, no cluster in the header, and S skips NODE.
func TestLoneProcessHasNoNodes(t *testing.T) {
	m := goldenModel(t, 150, 50)
	view := ansi.Strip(m.View())
	for _, s := range []string{"NODE", "NODES", "cluster"} {
		if strings.Contains(view, s) {
			t.Errorf("a lone process shows %q", s)
		}
	}
	press(m, "S", "S")
	if m.sortCol != sortLatency {
		t.Errorf("S S sorts by %v, want latency", m.sortCol)
	}
}

// TestClusterFilterAndSortByNode: "node:n2" keeps n2's shards only; S
// reaches NODE after STATE and sorts by node name.
func TestClusterFilterAndSortByNode(t *testing.T) {
	m, _ := clusterModel(t, 120, 40)
	press(m, "/")
	if l := ansi.Strip(m.statusLine()); !strings.Contains(l, "joining  node:n1") {
		t.Errorf("the filter's hint does not show a node term: %q", l)
	}
	typeText(m, "node:N2")
	press(m, "enter")
	if len(m.rows) != 6 {
		t.Fatalf("node:N2 shows %d shards, want 6", len(m.rows))
	}
	for _, r := range m.rows {
		if n := m.snap.Shards[r].Node; n != "n2" {
			t.Fatalf("node:N2 shows a shard of %s", n)
		}
	}
	if _, err := parseFilter("node:"); err == nil {
		t.Error(`"node:" accepted`)
	}
	press(m, "/")
	typeText(m, " !ready")
	press(m, "enter")
	for _, r := range m.rows {
		if si := &m.snap.Shards[r]; si.Node != "n2" || si.State.String() == "ready" {
			t.Fatalf("node:N2 !ready shows %v on %s", si.Key, si.Node)
		}
	}
	press(m, "esc", "S", "S")
	if m.sortCol != sortNode || !strings.Contains(lineWith(m, "SHARD"), "NODE▲") {
		t.Fatalf("S S: sort %v, header %q", m.sortCol, lineWith(m, "SHARD"))
	}
	prev := ""
	for _, r := range m.rows {
		n := m.snap.Shards[r].Node
		if n < prev {
			t.Fatalf("not sorted by node: %s after %s", n, prev)
		}
		prev = n
	}
}

// TestRemoteShardDetail: the detail of a shard another node runs (no past
// here) shows what the snapshot has, the node, and where its history is;
// a local shard's detail is as before, with its node.
func TestRemoteShardDetail(t *testing.T) {
	lipglossASCII(t)
	m, _ := clusterModel(t, 120, 40)
	selectKey(t, m, 1, 16) // n2's
	press(m, "enter")
	if !m.detailOpen {
		t.Fatal("the detail view did not open for a remote shard")
	}
	view := ansi.Strip(m.View())
	for _, s := range []string{"1/16 ready", "node n2", "the history lives on node n2"} {
		if !strings.Contains(view, s) {
			t.Errorf("remote detail lacks %q:\n%s", s, view)
		}
	}
	checkGolden(t, "cluster_detail_remote_120x40", m.View(), 40)
	m.Update(tickMsg{})
	if !m.detailOpen || !strings.Contains(ansi.Strip(m.View()), "history lives on node n2") {
		t.Error("the remote detail did not survive a refresh")
	}

	press(m, "esc")
	selectKey(t, m, 0, 16) // n1's: this process
	press(m, "enter")
	view = ansi.Strip(m.View())
	if !strings.Contains(view, "node n1") || strings.Contains(view, "history lives") {
		t.Errorf("local detail:\n%s", view)
	}
	// The detail line under the table names the node too.
	press(m, "esc")
	if l := lineWith(m, "0/16 ready for"); !strings.Contains(l, "node n1") {
		t.Errorf("detail line %q", l)
	}
}

// TestRemoteShardActionError: an action on a remote shard that fails says
// the cluster view's error, which names the node, as any error.
func TestRemoteShardActionError(t *testing.T) {
	m, f := clusterModel(t, 120, 40)
	selectKey(t, m, 1, 16)
	f.errs["close"] = errors.New("shard 1/16 on node n2: no answer")
	msg := runCmd(t, m, press(m, "c"))
	m.Update(msg)
	if got := ansi.Strip(m.statusLine()); !strings.Contains(got, "✗ close 1/16: shard 1/16 on node n2: no answer") {
		t.Errorf("status %q", got)
	}
	if calls := f.callList(); len(calls) != 1 || calls[0] != "close 1" {
		t.Errorf("calls %v", calls)
	}
}

// TestWatchOnlyProcess: a process running no shards says it watches the
// cluster; its node line says it runs none.
func TestWatchOnlyProcess(t *testing.T) {
	lipglossASCII(t)
	s := clusterFixture()
	for i := range s.Shards {
		s.Shards[i].Node = []string{"n2", "n3"}[i%2]
	}
	s.Nodes = append(s.Nodes, manager.NodeInfo{Name: "w1", LastSeen: t0, Self: true, WatchOnly: true})
	s.Nodes[0].Self = false
	f := newFake(s)
	f.local = "w1"
	m := newTestModel(t, f, 80, 24)
	view := m.View()
	checkGolden(t, "cluster_watch_80x24", view, 24)
	checkWidth(t, view, 80)
	if l := lineWith(m, "cluster"); !strings.Contains(l, "watching cluster of 4 nodes, 1 gone") {
		t.Errorf("header %q", l)
	}
	if l := lineWith(m, "» w1"); !strings.Contains(l, "» w1 watching") {
		t.Errorf("w1's cell %q", l)
	}
	m.Update(windowSize(120, 40))
	if l := lineStarting(m, "» w1 "); !strings.Contains(l, "watching, runs no shards") {
		t.Errorf("w1's line %q", l)
	}
}
