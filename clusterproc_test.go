package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"io"
	"maps"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/internal/filetest"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/internal/syncbuf"
)

// The harness of the cluster tests (issue 10): a NATS cluster of real
// nats-server processes, one `shardtop sim` for Discord, and several
// headless shardtop processes of one bot, each its own node, all on the
// cluster with bus.mode external.

// natsClusterName is the -cluster_name of the tests' NATS clusters.
const natsClusterName = "shardtop-e2e"

// natsCluster is a NATS cluster of nats-server processes with JetStream,
// routed over loopback, each with its own store directory.
type natsCluster struct {
	tb    testing.TB
	bin   string
	nodes []*natsNode
}

// natsNode is one server of a natsCluster. Its ports stay the same over
// stop and start, so that the URLs the shardtop processes were given keep
// naming it.
type natsNode struct {
	name        string
	storeDir    string
	clientPort  int // 0 until the first start has written its ports file
	clusterPort int
	cmd         *exec.Cmd
	out         *syncbuf.Buffer
	done        chan struct{}
}

// startNATSClusterProcs runs n nats-server processes forming a JetStream
// cluster on loopback until tb's cleanup, and returns once JetStream takes
// a bucket replicated on all of them.
func startNATSClusterProcs(tb testing.TB, n int) *natsCluster {
	tb.Helper()
	c := &natsCluster{tb: tb, bin: buildNATSServer(tb)}
	// The route ports must be known to every server before any starts: each
	// is taken from the kernel and freed at once (the client ports are the
	// servers' own picks, read from their ports files).
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		c.nodes = append(c.nodes, &natsNode{name: fmt.Sprintf("n%d", i), storeDir: tb.TempDir(),
			clusterPort: l.Addr().(*net.TCPAddr).Port})
		l.Close()
	}
	for i := range c.nodes {
		c.launch(i)
	}
	tb.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.cmd != nil {
				_ = nd.cmd.Process.Kill()
				<-nd.done
			}
		}
	})
	for i := range c.nodes {
		c.waitClient(i)
	}
	c.waitJetStream(c.url())
	return c
}

// launch starts server i (its client port the one it had, or a free one).
func (c *natsCluster) launch(i int) {
	c.tb.Helper()
	nd := c.nodes[i]
	var routes []string
	for _, o := range c.nodes {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", o.clusterPort))
	}
	port := "-1"
	if nd.clientPort != 0 {
		port = strconv.Itoa(nd.clientPort)
	}
	portsDir := c.tb.TempDir()
	nd.cmd = exec.Command(c.bin, "-a", "127.0.0.1", "-p", port, "-js", "-sd", nd.storeDir,
		"-server_name", nd.name, "-cluster_name", natsClusterName,
		"-cluster", fmt.Sprintf("nats://127.0.0.1:%d", nd.clusterPort), "-routes", strings.Join(routes, ","),
		"--ports_file_dir", portsDir)
	nd.out = &syncbuf.Buffer{}
	nd.cmd.Stdout, nd.cmd.Stderr = nd.out, nd.out
	if err := nd.cmd.Start(); err != nil {
		c.tb.Fatalf("start nats-server %s: %v", nd.name, err)
	}
	nd.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(nd.cmd, nd.done)
	if nd.clientPort == 0 {
		poll.UntilState(c.tb, 30*time.Second, "the ports file of nats-server "+nd.name, func() (bool, string) {
			files, _ := filepath.Glob(filepath.Join(portsDir, "*.ports"))
			if len(files) == 0 {
				return false, nd.out.String()
			}
			b, err := os.ReadFile(files[0])
			var ports struct {
				Nats []string `json:"nats"`
			}
			if err != nil || json.Unmarshal(b, &ports) != nil || len(ports.Nats) == 0 {
				return false, fmt.Sprintf("ports file %q: %v\n%s", b, err, nd.out.String())
			}
			_, p, _ := net.SplitHostPort(strings.TrimPrefix(ports.Nats[0], "nats://"))
			nd.clientPort, err = strconv.Atoi(p)
			return err == nil, fmt.Sprintf("ports file %q: %v", b, err)
		})
	}
}

// waitClient waits until server i accepts a client.
func (c *natsCluster) waitClient(i int) {
	c.tb.Helper()
	nd := c.nodes[i]
	poll.UntilState(c.tb, 30*time.Second, "nats-server "+nd.name+" to accept connections", func() (bool, string) {
		select {
		case <-nd.done:
			c.tb.Fatalf("nats-server %s exited:\n%s", nd.name, nd.out)
		default:
		}
		nc, err := nats.Connect(c.urls()[i], nats.NoReconnect())
		if err == nil {
			nc.Close()
		}
		return err == nil, fmt.Sprintf("%v\n%s", err, nd.out)
	})
}

// waitJetStream waits until a key-value bucket replicated on every server
// can be created through url, then deletes it: the meta group has a leader
// and every server is a current peer.
func (c *natsCluster) waitJetStream(url string) {
	c.tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		c.tb.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.tb.Fatal(err)
	}
	bucket := fmt.Sprintf("e2e_probe_%d", time.Now().UnixNano())
	poll.UntilState(c.tb, 60*time.Second, "an R"+strconv.Itoa(len(c.nodes))+" key-value bucket on the NATS cluster", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Replicas: len(c.nodes), Storage: jetstream.FileStorage})
		return err == nil, fmt.Sprint(err)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteKeyValue(ctx, bucket); err != nil {
		c.tb.Fatalf("delete the probe bucket: %v", err)
	}
}

// urls are the servers' client URLs.
func (c *natsCluster) urls() []string {
	var u []string
	for _, nd := range c.nodes {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", nd.clientPort))
	}
	return u
}

// url is every client URL in one string, as nats.Connect takes them.
func (c *natsCluster) url() string { return strings.Join(c.urls(), ",") }

// stop ends server i with SIGTERM and waits for it to exit.
func (c *natsCluster) stop(i int) {
	c.tb.Helper()
	nd := c.nodes[i]
	if err := nd.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.tb.Fatalf("SIGTERM nats-server %s: %v", nd.name, err)
	}
	select {
	case <-nd.done:
	case <-time.After(30 * time.Second):
		c.tb.Fatalf("nats-server %s did not exit within 30 s of SIGTERM:\n%s", nd.name, nd.out)
	}
	nd.cmd = nil
}

// start runs server i again on its store directory and ports, and waits
// until it is a current JetStream peer again.
func (c *natsCluster) start(i int) {
	c.tb.Helper()
	c.launch(i)
	c.waitClient(i)
	c.waitJetStream(c.urls()[i])
}

// leader is the name of the server that leads stream's group ("" if none).
func (c *natsCluster) leader(ctx context.Context, js jetstream.JetStream, stream string) string {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return ""
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}

// index is the position of the server named name (-1 if none).
func (c *natsCluster) index(name string) int {
	return slices.IndexFunc(c.nodes, func(nd *natsNode) bool { return nd.name == name })
}

// botSpec is the part of every node's config the processes of one bot
// share, and of the simulator they run against.
type botSpec struct {
	shards, conc int
	window       time.Duration // the simulator's and the program's identify window
	leaseTTL     time.Duration
	ownership    string  // "fixed" or "balanced"
	rate         float64 // the simulator's MESSAGE_CREATE per second per shard
	// inProcessSim runs the simulator in the test process rather than as
	// `shardtop sim`, for its Go-only counters (MaxLiveSessions).
	inProcessSim bool
}

// clusterBot is one bot: a sim, a NATS cluster and shardtop nodes.
type clusterBot struct {
	t     testing.TB
	spec  botSpec
	sim   *simProc           // its HTTP API (proc is nil with inProcessSim)
	srv   *discordsim.Server // with inProcessSim
	nats  *natsCluster
	nodes map[string]*clusterNode
}

// clusterNode is one shardtop process of the bot and its earlier runs.
type clusterNode struct {
	name    string
	cfgPath string
	p       *proc   // the current (or last) run
	runs    []*proc // every run, first to last
	ended   bool    // the test ended the current run (SIGTERM, SIGKILL)
}

// newClusterBot starts the simulator and the NATS cluster of a bot.
func newClusterBot(t testing.TB, spec botSpec) *clusterBot {
	t.Helper()
	if spec.ownership == "" {
		spec.ownership = "balanced"
	}
	b := &clusterBot{t: t, spec: spec, nodes: map[string]*clusterNode{}}
	b.nats = startNATSClusterProcs(t, 3)
	args := []string{"--shards", strconv.Itoa(spec.shards), "--max-concurrency", strconv.Itoa(spec.conc),
		"--window", spec.window.String(), "--heartbeat", "5s", "--guilds", strconv.Itoa(spec.shards), "--token", e2eToken}
	if spec.rate > 0 {
		args = append(args, "--rate", strconv.FormatFloat(spec.rate, 'f', -1, 64))
	}
	if spec.inProcessSim {
		srv, err := discordsim.Start(discordsim.Config{Token: e2eToken, Shards: spec.shards, MaxConcurrency: spec.conc,
			IdentifyWindow: spec.window, HeartbeatInterval: 5 * time.Second, Guilds: spec.shards, EventRate: spec.rate})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		b.srv = srv
		b.sim = &simProc{api: srv.APIURL(), base: strings.TrimSuffix(srv.APIURL(), "/api/v10")}
	} else {
		b.sim = startSimProc(t, args...)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, name := range slices.Sorted(maps.Keys(b.nodes)) {
			for i, p := range b.nodes[name].runs {
				t.Logf("node %s, run %d: stderr:\n%s", name, i+1, p.stderr)
			}
		}
	})
	return b
}

// clusterConfig is the config of node name with shard_ids ids ("" = none).
func (b *clusterBot) clusterConfig(name, ids string) string {
	var urls []string
	for _, u := range b.nats.urls() {
		urls = append(urls, strconv.Quote(u))
	}
	shardIDs := ""
	if ids != "" {
		shardIDs = fmt.Sprintf("shard_ids = %q\n", ids)
	}
	return fmt.Sprintf(`# shardtop cluster end-to-end test config, node %[1]s
api_url = %[2]q
token = %[3]q
compression = "zlib-stream"
shard_count = %[4]d
max_concurrency = %[5]d
%[6]sidentify_window = %[7]q
identify_margin = "50ms"
state_file = "state.toml"
refresh = "50ms"

[bus]
mode = "external"
url = [%[8]s]
replicas = 3

[cluster]
enabled = true
node = %[1]q
ownership = %[9]q
lease_ttl = %[10]q
`, name, b.sim.api, e2eToken, b.spec.shards, b.spec.conc, shardIDs, b.spec.window.String(),
		strings.Join(urls, ", "), b.spec.ownership, b.spec.leaseTTL.String())
}

// start runs node name (a new one with shard_ids ids, or the same config
// again) headless with JSON logs.
func (b *clusterBot) start(name, ids string) *clusterNode {
	b.t.Helper()
	n := b.nodes[name]
	if n == nil {
		dir := b.t.TempDir()
		n = &clusterNode{name: name, cfgPath: filetest.Write(b.t, dir, "shardtop.toml", b.clusterConfig(name, ids), 0o600)}
		b.nodes[name] = n
	}
	n.ended = false
	n.p = startProc(b.t, "-config", n.cfgPath, "--headless", "--log-format", "json")
	n.runs = append(n.runs, n.p)
	return n
}

// waitJoined waits for the node's "cluster joined" line: the program runs
// it as a node of the cluster (the wiring of issue 10).
func (n *clusterNode) waitJoined(t testing.TB) {
	t.Helper()
	poll.UntilState(t, 30*time.Second, `node `+n.name+`'s "cluster joined" line (shardtop must run [cluster] enabled as a node)`, func() (bool, string) {
		select {
		case <-n.p.done:
			t.Fatalf("node %s exited early: %v; stderr:\n%s", n.name, n.p.err, n.p.stderr)
		default:
		}
		l := findLog(n.p.stderr.String(), "cluster joined")
		return l != nil && l["node"] == n.name, n.p.stderr.String()
	})
}

// waitLog waits for a line msg in the node's current run's log.
func (n *clusterNode) waitLog(t testing.TB, msg string) map[string]any {
	t.Helper()
	var l map[string]any
	poll.UntilState(t, 30*time.Second, "node "+n.name+"'s "+strconv.Quote(msg)+" line", func() (bool, string) {
		select {
		case <-n.p.done:
			t.Fatalf("node %s exited early: %v; stderr:\n%s", n.name, n.p.err, n.p.stderr)
		default:
		}
		l = findLog(n.p.stderr.String(), msg)
		return l != nil, n.p.stderr.String()
	})
	return l
}

// alive reports whether the node's current run still runs.
func (n *clusterNode) alive() bool {
	select {
	case <-n.p.done:
		return false
	default:
		return true
	}
}

// readyLine is one "shard ready" log line of a node.
type readyLine struct {
	node  string
	shard int
	from  string // "identifying" or "resuming"
	at    time.Time
}

// readyLines are the "shard ready" lines of run p of node (active shards
// only) from byte offset from of its stderr on.
func readyLines(node string, p *proc, from int) []readyLine {
	s := p.stderr.String()
	if from > len(s) {
		from = len(s)
	}
	var out []readyLine
	for _, l := range jsonLogLines(s[from:]) {
		if l["msg"] != "shard ready" || l["role"] != nil {
			continue
		}
		key, _ := l["shard"].(string)
		id, _, ok := strings.Cut(key, "/")
		shard, err := strconv.Atoi(id)
		if !ok || err != nil {
			continue
		}
		from, _ := l["from"].(string)
		at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(l["time"]))
		out = append(out, readyLine{node: node, shard: shard, from: from, at: at})
	}
	return out
}

// mark is an offset in each live node's stderr, for "after this moment".
type mark map[string]int

// mark returns the current end of every node's current run's stderr,
// backed off to a line start.
func (b *clusterBot) mark() mark {
	m := mark{}
	for name, n := range b.nodes {
		s := n.p.stderr.String()
		m[name] = strings.LastIndexByte(s, '\n') + 1
	}
	return m
}

// readySince is every node's "shard ready" lines after m (a node's whole
// current run if it started after m).
func (b *clusterBot) readySince(m mark) []readyLine {
	var out []readyLine
	for name, n := range b.nodes {
		out = append(out, readyLines(name, n.p, m[name])...)
	}
	return out
}

// leaseRecord is a shard's record in the bucket PREFIX_shards, as
// shardlease writes it.
type leaseRecord struct {
	Owner   string `json:"owner"`
	Epoch   uint64 `json:"epoch"`
	Session *struct {
		ID  string `json:"id"`
		Seq int64  `json:"seq"`
	} `json:"session"`
	revision uint64
	created  time.Time // when the server stored this revision
}

// leaseBucket is the KV bucket of the shard leases of the default prefix.
const leaseBucket = "shardtop_shards"

// leases reads every shard's lease record (by shard ID) from the bucket.
func leases(ctx context.Context, js jetstream.JetStream, count int) (map[int]leaseRecord, error) {
	kv, err := js.KeyValue(ctx, leaseBucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", leaseBucket, err)
	}
	out := map[int]leaseRecord{}
	for id := range count {
		key := fmt.Sprintf("%d.%d", id, count)
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", leaseBucket, key, err)
		}
		var r leaseRecord
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return nil, fmt.Errorf("%s %s: %w: %q", leaseBucket, key, err, e.Value())
		}
		r.revision, r.created = e.Revision(), e.Created()
		out[id] = r
	}
	return out, nil
}

// simSession is one session of GET /_sim/sessions.
type simSession struct {
	ID        string
	ShardID   int
	Seq       int64
	Connected bool
}

func (s *simProc) sessions(t testing.TB) []simSession {
	t.Helper()
	var ss []simSession
	getJSON(t, s.base+"/_sim/sessions", &ss)
	return ss
}

// control POSTs a /_sim/ control request with query q.
func (s *simProc) control(t testing.TB, what, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := s.base + "/_sim/" + what + "?" + q
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, body)
	}
}

// steady waits until every shard has one connected session on the sim
// and a lease record owned by a live node holding that session (saved);
// for balanced ownership, with the shards divided evenly among the live
// nodes. It returns the records.
func (b *clusterBot) steady(timeout time.Duration, js jetstream.JetStream) map[int]leaseRecord {
	b.t.Helper()
	var recs map[int]leaseRecord
	poll.UntilState(b.t, timeout, "every shard connected once, under the lease of a live node", func() (bool, string) {
		for name, n := range b.nodes {
			if n.p != nil && !n.alive() && !n.stopped() {
				b.t.Fatalf("node %s exited: %v; stderr:\n%s", name, n.p.err, n.p.stderr)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		recs, err = leases(ctx, js, b.spec.shards)
		if err != nil {
			return false, err.Error()
		}
		per := map[string]int{}
		for id := range b.spec.shards {
			r, ok := recs[id]
			switch {
			case !ok:
				return false, fmt.Sprintf("shard %d: no record in %s: no node has leased it", id, leaseBucket)
			case r.Owner == "" || b.nodes[r.Owner] == nil || !b.nodes[r.Owner].alive():
				return false, fmt.Sprintf("shard %d: lease record %+v: not held by a live node", id, r)
			}
			per[r.Owner]++
		}
		if b.spec.ownership == "balanced" {
			live := 0
			for _, n := range b.nodes {
				if n.alive() {
					live++
				}
			}
			for name, n := range b.nodes {
				if want := b.spec.shards / live; n.alive() && (per[name] < want || per[name] > want+1) {
					return false, fmt.Sprintf("balanced: %d live nodes, shards per node %v", live, per)
				}
			}
		}
		conn, sid := map[int]int{}, map[int]string{}
		for _, s := range b.sim.sessions(b.t) {
			if s.Connected {
				conn[s.ShardID]++
				sid[s.ShardID] = s.ID
			}
		}
		for id := range b.spec.shards {
			if conn[id] != 1 {
				return false, fmt.Sprintf("shard %d: %d connected sessions on the sim (per node %v)", id, conn[id], per)
			}
			if r := recs[id]; r.Session == nil || r.Session.ID != sid[id] {
				return false, fmt.Sprintf("shard %d: the lease record holds session %+v, the sim's is %s", id, r.Session, sid[id])
			}
		}
		return true, ""
	})
	return recs
}

// stopped reports whether the node's current run was ended by the test
// rather than by itself.
func (n *clusterNode) stopped() bool { return n.ended }

// kill ends node name's run with SIGKILL and waits for it to be gone.
func (b *clusterBot) kill(name string) {
	b.t.Helper()
	n := b.nodes[name]
	n.ended = true
	n.p.signal(b.t, syscall.SIGKILL)
	<-n.p.done
}

// term ends node name's run with SIGTERM and checks it exits 0 within
// timeout (its shards handed over or their sessions saved).
func (b *clusterBot) term(name string, timeout time.Duration) {
	b.t.Helper()
	n := b.nodes[name]
	n.ended = true
	n.p.signal(b.t, syscall.SIGTERM)
	if code := n.p.exitCode(b.t, timeout); code != exitOK {
		b.t.Errorf("node %s: exit %d after SIGTERM, want 0; stderr:\n%s", name, code, n.p.stderr)
	}
}

// termAll ends every live node with SIGTERM at once and checks they exit 0.
func (b *clusterBot) termAll(timeout time.Duration) {
	b.t.Helper()
	var live []string
	for name, n := range b.nodes {
		if n.alive() {
			n.ended = true
			n.p.signal(b.t, syscall.SIGTERM)
			live = append(live, name)
		}
	}
	slices.Sort(live)
	for _, name := range live {
		if code := b.nodes[name].p.exitCode(b.t, timeout); code != exitOK {
			b.t.Errorf("node %s: exit %d after SIGTERM, want 0; stderr:\n%s", name, code, b.nodes[name].p.stderr)
		}
	}
}

// connectAll connects to url (servers separated by commas), reconnecting
// to any of them for as long as the test runs.
func connectAll(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// jetStream connects to every server of the bot's NATS cluster.
func (b *clusterBot) jetStream() jetstream.JetStream {
	b.t.Helper()
	js, err := jetstream.New(connectAll(b.t, b.nats.url()))
	if err != nil {
		b.t.Fatal(err)
	}
	return js
}
