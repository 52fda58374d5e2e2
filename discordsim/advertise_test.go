package discordsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// request sends method url with the given headers and decodes a JSON
// answer into into (if not nil); it returns the status.
func request(t *testing.T, method, url string, header map[string]string, into any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("%s %s: decode: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

// TestControlOrigin: a control request from a web page of another origin
// is refused with a 403 and does nothing. A page can POST a query string
// to any address without a preflight, so without this check any site a
// developer visits could close their shards with 4004.
func TestControlOrigin(t *testing.T) {
	s := startSim(t, Config{Guilds: 4})
	c := dial(t, s.GatewayURL(), "")
	c.hello()
	c.identify("sim-token", 0, 1)
	base := "http://" + s.Addr() + "/_sim"
	for _, origin := range []string{"http://evil.example", "null", "https://" + s.Addr(), "http://" + s.Addr() + ".evil.example"} {
		var bad map[string]any
		if code := request(t, "POST", base+"/close?shard=0&code=4004", map[string]string{"Origin": origin}, &bad); code != 403 || bad["error"] == nil {
			t.Errorf("POST /close with Origin %s: %d %v, want 403", origin, code, bad)
		}
		if code := request(t, "GET", base+"/sessions", map[string]string{"Origin": origin}, nil); code != 403 {
			t.Errorf("GET /sessions with Origin %s: %d, want 403", origin, code)
		}
	}
	if st := s.Stats(); len(st.Closes) != 0 || len(st.Faults) != 0 || st.ActiveConnections != 1 {
		t.Fatalf("a refused request acted: %+v", st)
	}
	// Its own origin, and no Origin (curl, a bot), are served.
	var hit map[string]int
	if code := request(t, "POST", base+"/reconnect?shard=0", map[string]string{"Origin": "http://" + s.Addr()}, &hit); code != 200 || hit["hit"] != 1 {
		t.Fatalf("POST /reconnect from its own origin: %d %v", code, hit)
	}
	if f := c.read(); f.Op != 7 {
		t.Fatalf("got %v, want op 7", f)
	}
	if code := request(t, "POST", base+"/close?shard=0&code=4000", nil, &hit); code != 200 || hit["hit"] != 1 {
		t.Fatalf("POST /close without Origin: %d %v", code, hit)
	}
	c.expectClose(4000)
}

// TestNonLoopbackNeedsControlToken: Start refuses an address that is not
// loopback without a control token, naming the address.
func TestNonLoopbackNeedsControlToken(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		s, err := Start(Config{Addr: addr})
		if err == nil {
			s.Close()
			t.Fatalf("Start(%s) without a ControlToken listened on %s", addr, s.Addr())
		}
		var ce *ConfigError
		if !errors.Is(err, ErrControlTokenRequired) || !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &ce) ||
			ce.Field != "Addr" || !strings.Contains(err.Error(), addr) {
			t.Fatalf("Start(%s): %v, want ErrControlTokenRequired naming Addr", addr, err)
		}
	}
}

// TestWildcardAdvertisesUsableURLs: listening on every interface, the
// server hands out a host a client can connect to (not 0.0.0.0 or [::]),
// and its control endpoints need the token.
func TestWildcardAdvertisesUsableURLs(t *testing.T) {
	s := startSim(t, Config{Addr: "0.0.0.0:0", ControlToken: "ctl-secret", Guilds: 4})
	host, port, err := net.SplitHostPort(s.AdvertisedAddr())
	if err != nil {
		t.Fatal(err)
	}
	_, listenPort, _ := net.SplitHostPort(s.Addr())
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() || port != listenPort {
		t.Fatalf("advertised %s for listen address %s", s.AdvertisedAddr(), s.Addr())
	}
	// One of this machine's addresses, and not loopback if it has another.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	mine, nonLoopback := false, false
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			mine = mine || ipn.IP.Equal(ip)
			nonLoopback = nonLoopback || ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast()
		}
	}
	if !mine || nonLoopback && ip.IsLoopback() {
		t.Fatalf("advertised %s: not a usable address of this machine (%v)", host, addrs)
	}
	want := "ws://" + s.AdvertisedAddr()
	if s.GatewayURL() != want+"/gateway" || s.ResumeURL() != want+"/gateway-resume" || s.APIURL() != "http://"+s.AdvertisedAddr()+"/api/v10" {
		t.Fatalf("URLs %s %s %s", s.APIURL(), s.GatewayURL(), s.ResumeURL())
	}
	// A bot follows the URLs as given.
	var gw struct {
		URL string `json:"url"`
	}
	if code := getJSON(t, s.APIURL()+"/gateway/bot", "Bot sim-token", &gw); code != 200 || gw.URL != want+"/gateway" {
		t.Fatalf("/gateway/bot: %d %+v", code, gw)
	}
	c := dial(t, gw.URL, "")
	c.hello()
	if r := c.identify("sim-token", 0, 1); r.ResumeGatewayURL != want+"/gateway-resume" {
		t.Fatalf("resume_gateway_url %s", r.ResumeGatewayURL)
	}
	// The control endpoints want the token.
	base := "http://" + s.AdvertisedAddr() + "/_sim"
	for _, auth := range []string{"", "Bearer wrong", "Bot sim-token", "Bearer ctl-secretx", "ctl-secret"} {
		h := map[string]string{}
		if auth != "" {
			h["Authorization"] = auth
		}
		if code := request(t, "POST", base+"/reconnect?shard=0", h, nil); code != 401 {
			t.Errorf("POST /reconnect with Authorization %q: %d, want 401", auth, code)
		}
		if code := request(t, "GET", base+"/sessions", h, nil); code != 401 {
			t.Errorf("GET /sessions with Authorization %q: %d, want 401", auth, code)
		}
	}
	if st := s.Stats(); len(st.Faults) != 0 {
		t.Fatalf("an unauthorised request acted: %v", st.Faults)
	}
	ok := map[string]string{"Authorization": "Bearer ctl-secret"}
	var hit map[string]int
	if code := request(t, "POST", base+"/reconnect?shard=0", ok, &hit); code != 200 || hit["hit"] != 1 {
		t.Fatalf("POST /reconnect with the token: %d %v", code, hit)
	}
	if f := c.read(); f.Op != 7 {
		t.Fatalf("got %v, want op 7", f)
	}
	var sessions []SessionInfo
	if code := request(t, "GET", base+"/sessions", ok, &sessions); code != 200 || len(sessions) != 1 {
		t.Fatalf("GET /sessions with the token: %d %v", code, sessions)
	}
	// The token does not let a web page in.
	ok["Origin"] = "http://evil.example"
	if code := request(t, "POST", base+"/reconnect?shard=0", ok, nil); code != 403 {
		t.Fatalf("POST /reconnect with the token from a web page: %d, want 403", code)
	}
	cfg := Config{ControlToken: "ctl-secret"}
	for _, out := range []string{cfg.String(), fmt.Sprintf("%#v", cfg), cfg.LogValue().String()} {
		if strings.Contains(out, "ctl-secret") {
			t.Fatalf("control token shown: %s", out)
		}
	}
}

// TestAdvertise: Config.Advertise sets the host (and the port, if given)
// of every URL the server hands out; a bad one is refused.
func TestAdvertise(t *testing.T) {
	s := startSim(t, Config{Advertise: "localhost", Guilds: 4})
	_, port, _ := net.SplitHostPort(s.Addr())
	want := "ws://localhost:" + port
	var gw struct {
		URL string `json:"url"`
	}
	if code := getJSON(t, "http://"+s.Addr()+"/api/v10/gateway/bot", "Bot sim-token", &gw); code != 200 || gw.URL != want+"/gateway" {
		t.Fatalf("/gateway/bot: %d %+v, want %s/gateway", code, gw, want)
	}
	c := dial(t, gw.URL, "")
	c.hello()
	if r := c.identify("sim-token", 0, 1); r.ResumeGatewayURL != want+"/gateway-resume" {
		t.Fatalf("resume_gateway_url %s", r.ResumeGatewayURL)
	}
	// Its advertised origin is its own.
	if code := request(t, "GET", "http://"+s.Addr()+"/_sim/stats", map[string]string{"Origin": "http://localhost:" + port}, nil); code != 200 {
		t.Fatalf("GET /stats from http://localhost:%s: %d", port, code)
	}

	for adv, wantAddr := range map[string]string{
		"sim.example:4444": "sim.example:4444", "[::1]": "[::1]:PORT", "::1": "[::1]:PORT",
		"[::1]:4445": "[::1]:4445", "10.1.2.3": "10.1.2.3:PORT", "my_box.lan": "my_box.lan:PORT",
	} {
		s, err := Start(Config{Advertise: adv})
		if err != nil {
			t.Fatalf("Advertise %q: %v", adv, err)
		}
		_, p, _ := net.SplitHostPort(s.Addr())
		w := strings.Replace(wantAddr, "PORT", p, 1)
		if s.AdvertisedAddr() != w || s.GatewayURL() != "ws://"+w+"/gateway" || s.APIURL() != "http://"+w+"/api/v10" {
			t.Errorf("Advertise %q: %s, %s, want %s", adv, s.AdvertisedAddr(), s.GatewayURL(), w)
		}
		s.Close()
	}
	for _, adv := range []string{"http://sim.example", "sim.example/x", "0.0.0.0", "[::]:80", "sim.example:0",
		"sim.example:65536", "sim.example:http", "a b", "-x", "[::1", "fe80::1%eth0"} {
		s, err := Start(Config{Advertise: adv})
		if err == nil {
			s.Close()
			t.Errorf("Advertise %q accepted: %s", adv, s.GatewayURL())
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "Advertise" || !strings.Contains(err.Error(), strconv.Quote(adv)) {
			t.Errorf("Advertise %q: %v, want a ConfigError naming Advertise", adv, err)
		}
	}
}
