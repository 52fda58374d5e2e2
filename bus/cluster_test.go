package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/internal/poll"
)

// freeLoopbackPort is a loopback TCP port free at the time of the call.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServerCluster: three embedded servers form one cluster by routes
// with route credentials; an R3 bucket written through one is read
// through another, and after one server stops the two left still write
// and read it.
func TestServerCluster(t *testing.T) {
	const n = 3
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freeLoopbackPort(t)
	}
	servers := make([]*Server, n)
	for i := range n {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		servers[i] = startServerT(t, ServerConfig{Cluster: ClusterConfig{
			Name:       "shardtop-bus-test",
			Listen:     fmt.Sprintf("127.0.0.1:%d", ports[i]),
			Routes:     routes,
			ServerName: fmt.Sprintf("node-%d", i),
			User:       "route",
			Password:   "route-secret",
		}})
		if got, want := servers[i].ClusterURL(), fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i]); got != want {
			t.Errorf("server %d ClusterURL = %q, want %q", i, got, want)
		}
		if got, want := servers[i].Name(), fmt.Sprintf("node-%d", i); got != want {
			t.Errorf("server %d Name = %q, want %q", i, got, want)
		}
	}
	jsOf := func(s *Server) jetstream.JetStream {
		js, err := jetstream.New(connectT(t, s))
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	// Retried until the cluster has a JetStream meta leader (and, after
	// a server stops, until the bucket's leader has moved).
	// Each attempt has its own deadline: a request no JetStream leader
	// hears waits for all of it.
	retry := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		poll.UntilState(t, 30*time.Second, what, func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := f(ctx); err != nil {
				return false, err.Error()
			}
			return true, ""
		})
	}
	js0, js2 := jsOf(servers[0]), jsOf(servers[2])
	var kv jetstream.KeyValue
	retry("an R3 bucket to be created", func(ctx context.Context) error {
		var err error
		kv, err = js0.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "leases", Replicas: 3})
		return err
	})
	retry("a put through server 0", func(ctx context.Context) error { _, err := kv.Put(ctx, "shard.0", []byte("node-0")); return err })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv2, err := js2.KeyValue(ctx, "leases")
	if err != nil {
		t.Fatalf("bucket through server 2: %v", err)
	}
	get := func(kv jetstream.KeyValue, key, want string) {
		t.Helper()
		retry("reading "+key, func(ctx context.Context) error {
			e, err := kv.Get(ctx, key)
			if err != nil {
				return err
			}
			if string(e.Value()) != want {
				return fmt.Errorf("%s = %q, want %q", key, e.Value(), want)
			}
			return nil
		})
	}
	get(kv2, "shard.0", "node-0")
	if info, err := kv2.Status(ctx); err != nil || info.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
		t.Fatalf("bucket status: %v, %+v", err, info)
	}

	servers[0].Shutdown()
	retry("a put through server 2 with server 0 stopped", func(ctx context.Context) error { _, err := kv2.Put(ctx, "shard.1", []byte("node-2")); return err })
	kv1, err := jsOf(servers[1]).KeyValue(ctx, "leases")
	if err != nil {
		t.Fatalf("bucket through server 1: %v", err)
	}
	get(kv1, "shard.0", "node-0")
	get(kv1, "shard.1", "node-2")
}

// TestServerClusterRefused: a cluster configuration that cannot work is
// a *ServerError saying why, matching its sentinel, without the route
// password.
func TestServerClusterRefused(t *testing.T) {
	const secret = "route-secret-xyz"
	for _, tc := range []struct {
		name string
		c    ClusterConfig
		want error
	}{
		{"no name", ClusterConfig{Listen: "127.0.0.1:0"}, ErrNoClusterName},
		{"routes without listener", ClusterConfig{Name: "c", Routes: []string{"nats-route://127.0.0.1:1"}}, ErrNoClusterListen},
		{"wildcard without credentials", ClusterConfig{Name: "c", Listen: "0.0.0.0:0"}, ErrNoRouteCredentials},
		{"user without password", ClusterConfig{Name: "c", Listen: "127.0.0.1:0", User: "route"}, ErrBadRouteCredentials},
		{"password without user", ClusterConfig{Name: "c", Listen: "127.0.0.1:0", Password: secret}, ErrBadRouteCredentials},
		{"not a route URL", ClusterConfig{Name: "c", Listen: "127.0.0.1:0", Routes: []string{"nats://127.0.0.1:1"}}, ErrBadRoute},
		{"route without port", ClusterConfig{Name: "c", Listen: "127.0.0.1:0", Routes: []string{"nats-route://u:" + secret + "@127.0.0.1"}}, ErrBadRoute},
	} {
		cfg := ServerConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Cluster: tc.c}
		s, err := StartServer(cfg)
		if err == nil {
			s.Shutdown()
			t.Errorf("%s: started", tc.name)
			continue
		}
		var se *ServerError
		if !errors.As(err, &se) || !errors.Is(err, tc.want) || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v; want a *ServerError matching %v, without the password", tc.name, err, tc.want)
		}
	}
	if _, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Cluster: ClusterConfig{Name: "c", Listen: "127.0.0.1:x"}}); err == nil ||
		!strings.Contains(err.Error(), `cluster listen "127.0.0.1:x"`) {
		t.Errorf("bad cluster port: %v; want it named", err)
	}
}
