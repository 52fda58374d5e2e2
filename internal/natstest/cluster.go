package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/internal/poll"
)

// ClusterName is the NATS cluster name of the servers StartCluster runs.
const ClusterName = "shardtop-test"

// clusterTimeout bounds a cluster's forming and its JetStream meta leader
// election on a loaded machine.
const clusterTimeout = 30 * time.Second

// clusterOpts remembers the options each clustered server was started
// with, so that Restart can bring it back on the same ports and store.
var clusterOpts sync.Map // *server.Server -> *server.Options

// StartCluster runs n NATS servers with JetStream on loopback random ports,
// forming one cluster named ClusterName by routes, until the end of the
// test. Server i is named "n<i>" and stores in its own temporary
// directory. configure, if given, changes each server's options before it
// starts. It returns once every server accepts connections and JetStream
// has a meta leader every server follows, so that R3 streams and buckets
// can be created at once.
func StartCluster(tb testing.TB, n int, configure ...func(i int, o *server.Options)) []*server.Server {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("StartCluster: n = %d, want at least 1", n)
	}
	// Pick every route port first, so that each server routes to all
	// the others: the cluster then does not depend on any one server
	// for its gossip, and survives any one of them stopping.
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(tb)
	}
	servers := make([]*server.Server, n)
	for i := range n {
		opts := &server.Options{
			ServerName: "n" + strconv.Itoa(i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   tb.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: ClusterName,
				Host: "127.0.0.1",
				Port: ports[i],
			},
		}
		for j, p := range ports {
			if j != i {
				opts.Routes = append(opts.Routes, routeURL(p))
			}
		}
		for _, c := range configure {
			c(i, opts)
		}
		servers[i] = startClustered(tb, opts)
	}
	WaitClusterReady(tb, servers)
	return servers
}

// Restart starts again servers[i], which has been shut down, with the
// options, ports and store it had, and waits until the cluster is ready
// again. It replaces servers[i] and returns the new server.
func Restart(tb testing.TB, servers []*server.Server, i int) *server.Server {
	tb.Helper()
	v, ok := clusterOpts.Load(servers[i])
	if !ok {
		tb.Fatalf("Restart: server %d was not started by StartCluster", i)
	}
	servers[i].Shutdown()
	servers[i].WaitForShutdown()
	opts := v.(*server.Options).Clone()
	servers[i] = startClustered(tb, opts)
	WaitClusterReady(tb, servers)
	return servers[i]
}

// WaitClusterReady waits until every running server of servers has routes
// to the other running ones, sees a JetStream meta leader and is current
// with it, and answers a client's JetStream account info. Servers that
// were shut down are skipped.
func WaitClusterReady(tb testing.TB, servers []*server.Server) {
	tb.Helper()
	var live []*server.Server
	for _, s := range servers {
		if s.Running() {
			live = append(live, s)
		}
	}
	poll.UntilState(tb, clusterTimeout, "the nats cluster to be ready", func() (bool, string) { return clusterReady(live) })
}

func clusterReady(live []*server.Server) (bool, string) {
	leaders := 0
	for _, s := range live {
		if len(live) > 1 && s.NumRoutes() < len(live)-1 {
			return false, fmt.Sprintf("%s has %d routes, want %d", s.Name(), s.NumRoutes(), len(live)-1)
		}
		if s.JetStreamIsLeader() {
			leaders++
		}
		if !s.JetStreamIsCurrent() {
			return false, s.Name() + " not current with the JetStream meta leader"
		}
	}
	if len(live) > 1 && leaders != 1 {
		return false, fmt.Sprintf("%d JetStream meta leaders", leaders)
	}
	for _, s := range live {
		if err := accountInfo(s.ClientURL()); err != nil {
			return false, fmt.Sprintf("%s: account info: %v", s.Name(), err)
		}
	}
	return true, ""
}

func accountInfo(url string) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// ClusterURLs is the comma-joined client URLs of servers, as nats.Connect
// takes them.
func ClusterURLs(servers []*server.Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

func startClustered(tb testing.TB, opts *server.Options) *server.Server {
	tb.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		tb.Fatalf("nats server %s: %v", opts.ServerName, err)
	}
	s.Start()
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(readyTimeout) {
		tb.Fatalf("nats server %s not ready for connections after %v", opts.ServerName, readyTimeout)
	}
	saved := opts.Clone()
	if addr, ok := s.Addr().(*net.TCPAddr); ok {
		saved.Port = addr.Port
	}
	clusterOpts.Store(s, saved)
	return s
}

func routeURL(port int) *url.URL {
	return &url.URL{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
}

// freePort is a loopback TCP port free at the time of the call.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
