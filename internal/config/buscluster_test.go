package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shardtop/shardtop/internal/filetest"
)

// TestBusClusterValues: the [bus.cluster] keys land in Bus.Cluster, the
// password file relative to the config file, and replicas above 1 are
// accepted for a clustered embedded server.
func TestBusClusterValues(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Parse(filepath.Join(dir, "c.toml"), `[bus]
replicas = 3
[bus.cluster]
name = "bot-a"
listen = "10.0.0.1:6222"
routes = ["nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"]
server_name = "m1"
user = "route"
password_file = "route-password"
`)
	if err != nil {
		t.Fatal(err)
	}
	want := BusCluster{Name: "bot-a", Listen: "10.0.0.1:6222", Routes: BusURLs{"nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"},
		ServerName: "m1", User: "route", PasswordFile: filepath.Join(dir, "route-password")}
	if !reflect.DeepEqual(cfg.Bus.Cluster, want) || !cfg.Bus.Cluster.Clustered() || cfg.Bus.Replicas != 3 {
		t.Errorf("got %+v, replicas %d; want %+v, 3", cfg.Bus.Cluster, cfg.Bus.Replicas, want)
	}
	if Default().Bus.Cluster.Clustered() {
		t.Error("the default is clustered")
	}
}

// TestBusClusterErrorsNameFileLineAndKey: each bad [bus.cluster] value is
// a *config.Error naming the file, line and key.
func TestBusClusterErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"no name", "[bus.cluster]\nlisten = \"127.0.0.1:6222\"\n", "c.toml:1: bus.cluster.name: is needed"},
		{"bad name", "[bus.cluster]\nname = \"a.b\"\nlisten = \"127.0.0.1:6222\"\n", "c.toml:2: bus.cluster.name: must be 1 to 64 letters"},
		{"no listen", "[bus.cluster]\nname = \"c\"\n", "c.toml:1: bus.cluster.listen: is needed"},
		{"bad listen", "[bus.cluster]\nname = \"c\"\nlisten = \"6222\"\n", "c.toml:3: bus.cluster.listen: must be HOST:PORT, got \"6222\""},
		{"route scheme", "[bus.cluster]\nname = \"c\"\nlisten = \"127.0.0.1:0\"\nroutes = [\"nats://a:1\"]\n", "c.toml:4: bus.cluster.routes: must be a nats-route://HOST:PORT URL, got \"nats://a:1\""},
		{"route no port", "[bus.cluster]\nname = \"c\"\nlisten = \"127.0.0.1:0\"\nroutes = \"nats-route://a\"\n", "c.toml:4: bus.cluster.routes: must be a nats-route://HOST:PORT URL"},
		{"route password", "[bus.cluster]\nname = \"c\"\nlisten = \"127.0.0.1:0\"\nroutes = [\"nats-route://u:hunter2@a:1\"]\n", "c.toml:4: bus.cluster.routes: must not hold a user or password"},
		{"bad server_name", "[bus.cluster]\nname = \"c\"\nlisten = \"127.0.0.1:0\"\nserver_name = \"a b\"\n", "c.toml:4: bus.cluster.server_name: must be 1 to 64"},
		{"password without user", "[bus.cluster]\nname = \"c\"\nlisten = \"127.0.0.1:0\"\npassword_file = \"p\"\n", "c.toml:4: bus.cluster.password_file: needs bus.cluster.user"},
		{"user alone", "[bus.cluster]\nuser = \"u\"\n", "c.toml:1: bus.cluster: needs listen and name"},
		{"external", "[bus]\nmode = \"external\"\nurl = \"nats://a:1\"\n[bus.cluster]\nname = \"c\"\nlisten = \"127.0.0.1:0\"\n", "c.toml:4: bus.cluster: is for mode embedded"},
		{"unknown key", "[bus.cluster]\nport = 6222\n", "c.toml:2: bus.cluster.port: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.toml", tc.text)
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %v, want a *config.Error containing %q (and no password)", err, tc.want)
			}
		})
	}
}

// TestResolveBusCluster: the route password comes from
// SHARDTOP_BUS_ROUTE_PASSWORD, else password_file; a route listener
// beyond loopback without one is refused naming bus.cluster.listen.
func TestResolveBusCluster(t *testing.T) {
	dir := t.TempDir()
	passwordFile := filetest.Write(t, dir, "route-password", "route-secret\n", 0o600)
	parse := func(text string) Config {
		t.Helper()
		cfg, err := Parse(filepath.Join(dir, "c.toml"), text)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if creds, _, err := Default().ResolveBusCluster(envMap(nil)); err != nil || creds.User != "" {
		t.Errorf("not clustered: %+v %v", creds, err)
	}
	loopback := parse("[bus.cluster]\nname = \"c\"\nlisten = \"127.0.0.1:6222\"\n")
	if creds, _, err := loopback.ResolveBusCluster(envMap(nil)); err != nil || creds.User != "" {
		t.Errorf("loopback without credentials: %+v %v", creds, err)
	}
	withUser := parse(fmt.Sprintf("[bus]\nreplicas = 3\n[bus.cluster]\nname = \"c\"\nlisten = \"0.0.0.0:6222\"\nuser = \"route\"\npassword_file = %q\n", passwordFile))
	creds, w, err := withUser.ResolveBusCluster(envMap(nil))
	if err != nil || creds.User != "route" || creds.Password.Reveal() != "route-secret" || len(w) != 0 {
		t.Errorf("password_file: %+v %v %v", creds, w, err)
	}
	creds, _, err = withUser.ResolveBusCluster(envMap(map[string]string{"SHARDTOP_BUS_ROUTE_PASSWORD": "from-env"}))
	if err != nil || creds.Password.Reveal() != "from-env" || creds.Source != "SHARDTOP_BUS_ROUTE_PASSWORD" {
		t.Errorf("env first: %+v %v", creds, err)
	}
	// replicas = 3 is accepted for a clustered embedded server.
	if _, _, err := withUser.ResolveBus(envMap(nil)); err != nil {
		t.Errorf("ResolveBus of a clustered embedded server with replicas 3: %v", err)
	}
	for _, tc := range []struct {
		name, text string
		env        map[string]string
		want       string
	}{
		{"open without credentials", "[bus.cluster]\nname = \"c\"\n\nlisten = \"0.0.0.0:6222\"\n", nil, "c.toml:4: bus.cluster.listen: \"0.0.0.0:6222\" is not loopback"},
		{"user without password", "[bus.cluster]\nname = \"c\"\nlisten = \"0.0.0.0:6222\"\nuser = \"u\"\n", nil, "c.toml:4: bus.cluster.user: needs a password"},
		{"password without user", "[bus.cluster]\nname = \"c\"\nlisten = \"0.0.0.0:6222\"\n", map[string]string{"SHARDTOP_BUS_ROUTE_PASSWORD": "route-secret"}, "SHARDTOP_BUS_ROUTE_PASSWORD: is set, but bus.cluster.user is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parse(tc.text).ResolveBusCluster(envMap(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "route-secret") {
				t.Errorf("error %v, want one containing %q (and no password)", err, tc.want)
			}
		})
	}
}
