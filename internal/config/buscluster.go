package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/internal/secret"
)

// busRoutePasswordEnv is the environment variable of the route password,
// which takes precedence over bus.cluster.password_file.
const busRoutePasswordEnv = "SHARDTOP_BUS_ROUTE_PASSWORD"

// maxBusRoutes bounds bus.cluster.routes, far beyond a bot's cluster.
const maxBusRoutes = 64

// BusCluster is the [bus.cluster] table: the embedded server joins a NATS
// cluster of the bot's machines, so that they share JetStream (its KV
// buckets and stream, replicated bus.replicas times). Empty listen: not
// clustered.
type BusCluster struct {
	// Name is the cluster's name, the same on every machine.
	Name string `toml:"name"`
	// Listen is HOST:PORT for the other servers' routes.
	Listen string `toml:"listen"`
	// Routes are the other servers, nats-route://HOST:PORT (one string
	// or an array of them, as bus.url).
	Routes BusURLs `toml:"routes"`
	// ServerName names this server, unique in the cluster (empty: the
	// node's name, else the host name; the caller decides).
	ServerName string `toml:"server_name"`
	// User of the routes, with a password from
	// SHARDTOP_BUS_ROUTE_PASSWORD or PasswordFile.
	User string `toml:"user"`
	// PasswordFile holds User's password.
	PasswordFile string `toml:"password_file"`
}

// Clustered reports whether the table asks for a cluster at all.
func (b BusCluster) Clustered() bool {
	return b.Listen != "" || len(b.Routes) > 0 || b.Name != ""
}

// validateBusCluster checks the [bus.cluster] table's values.
func (c *Config) validateBusCluster(bad func(key, format string, args ...any)) {
	bc := &c.Bus.Cluster
	if !bc.Clustered() {
		if bc.User != "" || bc.PasswordFile != "" || bc.ServerName != "" {
			bad("bus.cluster", "needs listen and name: without them the server is not clustered")
		}
		return
	}
	if c.Bus.Mode != BusEmbedded {
		bad("bus.cluster", "is for mode embedded: an external NATS cluster is configured by its own servers")
	}
	if bc.Name == "" {
		bad("bus.cluster.name", "is needed: the cluster's name, the same on every machine")
	} else if len(bc.Name) > maxBusPrefix || !busPrefix.MatchString(bc.Name) {
		bad("bus.cluster.name", "must be 1 to %d letters, digits, '-' or '_', got %q", maxBusPrefix, bc.Name)
	}
	if bc.Listen == "" {
		bad("bus.cluster.listen", "is needed: HOST:PORT where the other servers' routes connect")
	} else if err := checkListen(bc.Listen); err != nil {
		bad("bus.cluster.listen", "%v", err)
	}
	if len(bc.Routes) > maxBusRoutes {
		bad("bus.cluster.routes", "at most %d routes, got %d", maxBusRoutes, len(bc.Routes))
	}
	for _, r := range bc.Routes {
		if err := checkRoute(r); err != nil {
			bad("bus.cluster.routes", "%v", err)
			break
		}
	}
	if bc.ServerName != "" && (len(bc.ServerName) > maxBusPrefix || !busPrefix.MatchString(bc.ServerName)) {
		bad("bus.cluster.server_name", "must be 1 to %d letters, digits, '-' or '_', got %q", maxBusPrefix, bc.ServerName)
	}
	if bc.PasswordFile != "" && bc.User == "" {
		bad("bus.cluster.password_file", "needs bus.cluster.user")
	}
}

// checkRoute checks one route URL: nats-route://HOST:PORT, without a user
// or password (the URL is logged; they go in user and password_file).
func checkRoute(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %q", s) // url's error may repeat a password
	}
	if u.User != nil {
		return errors.New("must not hold a user or password (the URL is logged): use bus.cluster.user and password_file")
	}
	if u.Scheme != "nats-route" || u.Hostname() == "" || u.Port() == "" {
		return fmt.Errorf("must be a nats-route://HOST:PORT URL, got %q", s)
	}
	return nil
}

// resolveBusClusterPaths makes the table's password file relative to dir.
func (c *Config) resolveBusClusterPaths(dir string) {
	if p := &c.Bus.Cluster.PasswordFile; *p != "" && !filepath.IsAbs(*p) {
		*p = filepath.Join(dir, *p)
	}
}

// RouteCredentials are the route user and password of the cluster.
type RouteCredentials struct {
	User     string
	Password secret.Token
	// Source says where the password came from ("" for none).
	Source string
}

// ResolveBusCluster reads the route credentials of [bus.cluster]: the
// password from SHARDTOP_BUS_ROUTE_PASSWORD, else password_file. A
// listener beyond loopback needs them. Problems are *config.Error naming
// the key and its line, never the password. Not clustered: none.
func (c Config) ResolveBusCluster(getenv func(string) string) (creds RouteCredentials, warnings []string, err error) {
	bc := c.Bus.Cluster
	if c.Bus.Mode != BusEmbedded || !bc.Clustered() {
		return creds, nil, nil
	}
	envPassword := strings.TrimSpace(getenv(busRoutePasswordEnv))
	switch {
	case bc.User != "":
		password, source := envPassword, busRoutePasswordEnv
		if password == "" && bc.PasswordFile != "" {
			password, err = c.readBusSecret("bus.cluster.password_file", bc.PasswordFile)
			if err != nil {
				return creds, nil, err
			}
			source = "password_file " + bc.PasswordFile
			warnings = permissionWarning(bc.PasswordFile, "bus route password file")
		}
		if password == "" {
			return creds, nil, c.errorAt("bus.cluster.user", fmt.Errorf("needs a password: set %s or bus.cluster.password_file", busRoutePasswordEnv))
		}
		creds = RouteCredentials{User: bc.User, Password: secret.New(password), Source: source}
	case envPassword != "":
		return creds, nil, &Error{Key: busRoutePasswordEnv, Err: errors.New("is set, but bus.cluster.user is not: a password needs a user")}
	default:
		host, _, _ := net.SplitHostPort(bc.Listen) // validated with the config
		if !bus.IsLoopback(host) {
			return creds, nil, c.errorAt("bus.cluster.listen", fmt.Errorf("%q is not loopback: the embedded server refuses routes there without credentials (bus.cluster.user and password_file, or %s)", bc.Listen, busRoutePasswordEnv))
		}
	}
	return creds, warnings, nil
}
