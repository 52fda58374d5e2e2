package config

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/filetest"
	"github.com/shardtop/shardtop/internal/syncbuf"
)

const (
	busSecretToken    = "bus-token-never-shown-0123456789"
	busSecretPassword = "bus-password-never-shown-9876"
)

// envMap is a getenv of the variables in m.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestBusConfigDefaults(t *testing.T) {
	b := Default().Bus
	if b.Mode != "embedded" || b.Listen != "127.0.0.1:4222" || b.Prefix != "shardtop" || len(b.URL) != 0 ||
		time.Duration(b.MaxAge) != 24*time.Hour || b.MaxBytes != 1073741824 || time.Duration(b.DuplicateWindow) != 10*time.Minute ||
		b.Replicas != 1 || b.Buffer != 65536 || b.StoreDir != "" || b.Stream != "SHARDTOP" ||
		b.BufferBytes != 64<<20 || time.Duration(b.BufferWait) != 2*time.Second {
		t.Errorf("default [bus] = %+v", b)
	}
	cfg, err := Parse(filepath.Join("/etc/shardtop", "shardtop.toml"), "state_file = \"/var/lib/shardtop/state.toml\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.BusStoreDir(); got != "/var/lib/shardtop/state.toml.bus" {
		t.Errorf("BusStoreDir() = %q, want the state file's path with .bus", got)
	}
	// A --state-file given later moves the default store with it.
	cfg.StateFile = "/srv/other.toml"
	if got := cfg.BusStoreDir(); got != "/srv/other.toml.bus" {
		t.Errorf("BusStoreDir() after a new state file = %q", got)
	}
}

func TestBusConfigValues(t *testing.T) {
	dir := t.TempDir()
	p := filetest.Write(t, dir, "shardtop.toml", `
token_file = "discord-token"
[bus]
mode = "external"
listen = "[::1]:0"
url = ["nats://10.0.0.5:4222", "tls://nats.example.com:4443"]
prefix = "my-bot_2"
store_dir = "bus-data"
user = "shardtop"
password_file = "secrets/bus-password"
max_age = "0s"
max_bytes = 8388608
duplicate_window = "1h"
replicas = 3
buffer = 1048576
buffer_bytes = 1073741824
buffer_wait = "0s"
stream = "MY_BOT"
`, 0o600)
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Bus
	if b.Mode != BusExternal || b.Listen != "[::1]:0" || !slices.Equal(b.URL, []string{"nats://10.0.0.5:4222", "tls://nats.example.com:4443"}) ||
		b.Prefix != "my-bot_2" || b.User != "shardtop" || b.MaxAge != 0 || b.MaxBytes != 8388608 ||
		time.Duration(b.DuplicateWindow) != time.Hour || b.Replicas != 3 || b.Buffer != 1048576 ||
		b.BufferBytes != 1<<30 || b.BufferWait != 0 || b.Stream != "MY_BOT" {
		t.Errorf("[bus] = %+v", b)
	}
	if b.URL.String() != "nats://10.0.0.5:4222,tls://nats.example.com:4443" {
		t.Errorf("URL.String() = %q", b.URL.String())
	}
	if b.StoreDir != filepath.Join(dir, "bus-data") || cfg.BusStoreDir() != b.StoreDir || b.PasswordFile != filepath.Join(dir, "secrets/bus-password") {
		t.Errorf("paths not relative to the config file: store %q password %q", b.StoreDir, b.PasswordFile)
	}
	one, err := Parse("c.toml", "[bus]\nurl = \"nats://127.0.0.1:4222\"\n")
	if err != nil || !slices.Equal(one.Bus.URL, []string{"nats://127.0.0.1:4222"}) {
		t.Errorf("url as one string: %v, %v", one.Bus.URL, err)
	}
}

func TestBusConfigErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"mode", "[bus]\nmode = \"kafka\"\n", "c.toml:2: bus.mode: must be embedded, external or off, got \"kafka\""},
		{"listen", "[bus]\n\nlisten = \"4222\"\n", "c.toml:3: bus.listen: must be HOST:PORT, got \"4222\""},
		{"listen port", "[bus]\nlisten = \"127.0.0.1:99999\"\n", "c.toml:2: bus.listen: port must be 0 (a free one) to 65535, got \"99999\""},
		{"url scheme", "[bus]\nurl = \"http://127.0.0.1:4222\"\n", "c.toml:2: bus.url: must be a nats://, tls://, ws:// or wss:// URL with a host, got \"http://127.0.0.1:4222\""},
		{"url no host", "[bus]\nurl = [\"nats://a:1\", \"nats://\"]\n", "c.toml:2: bus.url: must be a nats://, tls://, ws:// or wss:// URL with a host"},
		{"url type", "[bus]\nurl = [4222]\n", "c.toml:2: bus.url: want NATS URLs (strings), got 4222"},
		{"prefix dot", "[bus]\nprefix = \"my.bot\"\n", "c.toml:2: bus.prefix: must be 1 to 64 letters, digits, '-' or '_' (one subject token), got \"my.bot\""},
		{"prefix wildcard", "[bus]\nprefix = \">\"\n", "c.toml:2: bus.prefix: must be 1 to 64"},
		{"prefix empty", "[bus]\nprefix = \"\"\n", "c.toml:2: bus.prefix: must be 1 to 64"},
		{"prefix long", "[bus]\nprefix = \"" + strings.Repeat("a", 65) + "\"\n", "c.toml:2: bus.prefix: must be 1 to 64"},
		{"max_age short", "[bus]\nmax_age = \"30s\"\n", "c.toml:2: bus.max_age: must be \"0s\" (no age limit) or from 1m0s to 8760h0m0s, got 30s"},
		{"max_bytes small", "[bus]\nmax_bytes = 1024\n", "c.toml:2: bus.max_bytes: must be from 8388608 (8 MiB, the largest event) to 1125899906842624 (1 PiB), got 1024"},
		{"max_bytes string", "[bus]\nmax_bytes = \"1G\"\n", "c.toml:2: bus.max_bytes:"},
		{"duplicate_window", "[bus]\nduplicate_window = \"10s\"\n", "c.toml:2: bus.duplicate_window: must be from 1m0s to 1h0m0s, got 10s"},
		{"duplicate over age", "[bus]\nmax_age = \"5m\"\nduplicate_window = \"10m\"\n", "c.toml:3: bus.duplicate_window: must not exceed max_age (5m0s), got 10m0s"},
		{"replicas", "[bus]\nreplicas = 0\n", "c.toml:2: bus.replicas: must be from 1 to 5, got 0"},
		{"buffer", "[bus]\nbuffer = 0\n", "c.toml:2: bus.buffer: must be from 1 to 1048576 events, got 0"},
		{"buffer_bytes", "[bus]\nbuffer_bytes = 1000\n", "c.toml:2: bus.buffer_bytes: must be from 1048576 (1 MiB) to 1099511627776 (1 TiB), got 1000"},
		{"buffer_wait", "[bus]\nbuffer_wait = \"2m\"\n", "c.toml:2: bus.buffer_wait: must be from 0s to 1m0s, got 2m0s"},
		{"stream", "[bus]\nstream = \"a.b\"\n", "c.toml:2: bus.stream: must be 1 to 64 letters, digits, '-' or '_', got \"a.b\""},
		{"password without user", "[bus]\npassword_file = \"p\"\n", "c.toml:2: bus.password_file: needs bus.user"},
		{"creds with user", "[bus]\nuser = \"u\"\ncreds_file = \"x.creds\"\n", "c.toml:3: bus.creds_file: goes alone"},
		{"token with user", "[bus]\nuser = \"u\"\ntoken_file = \"t\"\n", "c.toml:3: bus.token_file: is not used with bus.user"},
		{"unknown key", "[bus]\nmode = \"off\"\nlisten_addr = \":1\"\n", "c.toml:3: bus.listen_addr: unknown key"},
		// The bot's token_file is on line 1; the bus's, at fault, on line 5.
		{"token_file twice", "token_file = \"discord\"\n[bus]\nuser = \"u\"\npassword_file = \"p\"\ntoken_file = \"t\"\n", "c.toml:5: bus.token_file:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.toml", tc.text)
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want a *config.Error containing %q", err, tc.want)
			}
		})
	}
	// The bounds themselves are accepted.
	if _, err := Parse("c.toml", "[bus]\nmax_age = \"8760h\"\nmax_bytes = 1125899906842624\nduplicate_window = \"1h\"\nreplicas = 5\nbuffer = 1\nprefix = \""+strings.Repeat("a", 64)+"\"\n"); err != nil {
		t.Errorf("the largest values: %v", err)
	}
	if _, err := Parse("c.toml", "[bus]\nmax_age = \"1m\"\nmax_bytes = 8388608\nduplicate_window = \"1m\"\nlisten = \"127.0.0.1:0\"\n"); err != nil {
		t.Errorf("the smallest values: %v", err)
	}
}

// TestBusURLNoCredentials: a user or password in a NATS URL would be
// logged with it; the config refuses it without repeating it.
func TestBusURLNoCredentials(t *testing.T) {
	for _, u := range []string{"nats://user:" + busSecretPassword + "@127.0.0.1:4222", "nats://" + busSecretToken + "@127.0.0.1:4222"} {
		_, err := Parse("c.toml", "[bus]\nmode = \"external\"\nurl = [\""+u+"\"]\n")
		if err == nil || !strings.Contains(err.Error(), "c.toml:3: bus.url: must not hold a user or password") {
			t.Errorf("url with credentials: %v", err)
		}
		if err != nil && (strings.Contains(err.Error(), busSecretPassword) || strings.Contains(err.Error(), busSecretToken)) {
			t.Errorf("the error shows the secret: %v", err)
		}
		if err := CheckBusURL(u); err == nil || strings.Contains(err.Error(), "never-shown") {
			t.Errorf("CheckBusURL: %v", err)
		}
	}
	if err := CheckBusURL("nats://127.0.0.1:1"); err != nil {
		t.Errorf("CheckBusURL of a plain URL: %v", err)
	}
}

// TestResolveBus: the environment takes precedence over the files; the
// files are checked as the bot's token_file is; what does not fit the
// mode, or would leave the embedded server open beyond loopback, is an
// error naming the key and its line; no secret is ever shown.
func TestResolveBus(t *testing.T) {
	dir := t.TempDir()
	noEnv := envMap(nil)
	tokenFile := filetest.Write(t, dir, "bus-token", busSecretToken+"\n", 0o600)
	passwordFile := filetest.Write(t, dir, "bus-password", " "+busSecretPassword+"\n", 0o644)
	credsFile := filetest.Write(t, dir, "bus.creds", "-----BEGIN NATS USER JWT-----\n", 0o600)
	emptyFile := filetest.Write(t, dir, "empty", "\n", 0o600)
	twoLines := filetest.Write(t, dir, "two-lines", busSecretToken+"\nmore\n", 0o600)
	parse := func(text string) Config {
		t.Helper()
		cfg, err := Parse(filepath.Join(dir, "c.toml"), text)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	// None on loopback: fine.
	if creds, w, err := Default().ResolveBus(noEnv); err != nil || !creds.None() || len(w) != 0 {
		t.Errorf("defaults: %+v %v %v", creds, w, err)
	}
	// The token: SHARDTOP_BUS_TOKEN, else token_file.
	withToken := parse(fmt.Sprintf("[bus]\ntoken_file = %q\n", tokenFile))
	creds, _, err := withToken.ResolveBus(noEnv)
	if err != nil || creds.Token.Reveal() != busSecretToken || creds.Source != "token_file "+tokenFile {
		t.Errorf("token_file: %q from %q, %v", creds.Token.Reveal(), creds.Source, err)
	}
	creds, _, err = withToken.ResolveBus(envMap(map[string]string{"SHARDTOP_BUS_TOKEN": " from-env\n"}))
	if err != nil || creds.Token.Reveal() != "from-env" || creds.Source != "SHARDTOP_BUS_TOKEN" {
		t.Errorf("SHARDTOP_BUS_TOKEN first: %q from %q, %v", creds.Token.Reveal(), creds.Source, err)
	}
	// The password: SHARDTOP_BUS_PASSWORD, else password_file (which is
	// readable by others here: a warning).
	withUser := parse(fmt.Sprintf("[bus]\nlisten = \"0.0.0.0:4222\"\nuser = \"worker\"\npassword_file = %q\n", passwordFile))
	creds, w, err := withUser.ResolveBus(noEnv)
	if err != nil || creds.User != "worker" || creds.Password.Reveal() != busSecretPassword || len(w) != 1 || !strings.Contains(w[0], "chmod 600") {
		t.Errorf("password_file: %+v %v %v", creds, w, err)
	}
	creds, w, err = withUser.ResolveBus(envMap(map[string]string{"SHARDTOP_BUS_PASSWORD": "env-password"}))
	if err != nil || creds.Password.Reveal() != "env-password" || len(w) != 0 || creds.Source != "user worker with SHARDTOP_BUS_PASSWORD" {
		t.Errorf("SHARDTOP_BUS_PASSWORD first: %+v %v %v", creds, w, err)
	}
	external := parse(fmt.Sprintf("[bus]\nmode = \"external\"\nurl = \"nats://127.0.0.1:4222\"\ncreds_file = %q\n", credsFile))
	if creds, _, err := external.ResolveBus(noEnv); err != nil || creds.CredsFile != credsFile || creds.None() {
		t.Errorf("creds_file: %+v %v", creds, err)
	}
	// Mode off reads nothing, not even a missing file.
	off := parse("[bus]\nmode = \"off\"\ntoken_file = \"missing\"\n")
	if creds, _, err := off.ResolveBus(noEnv); err != nil || !creds.None() {
		t.Errorf("mode off: %+v %v", creds, err)
	}

	for _, tc := range []struct {
		name, text string
		env        map[string]string
		want       string
	}{
		{"open without credentials", "[bus]\n\nlisten = \"0.0.0.0:0\"\n", nil,
			"c.toml:3: bus.listen: \"0.0.0.0:0\" is not loopback: the embedded server refuses to listen there without credentials"},
		{"wildcard port only", "[bus]\nlisten = \":4222\"\n", nil, "c.toml:2: bus.listen: \":4222\" is not loopback"},
		{"external without url", "[bus]\nmode = \"external\"\n", nil, "c.toml:2: bus.mode: external needs bus.url, one or more NATS URLs (or --bus-url)"},
		{"creds_file embedded", fmt.Sprintf("[bus]\ncreds_file = %q\n", credsFile), nil, "c.toml:2: bus.creds_file: is for mode external"},
		{"replicas embedded", "[bus]\nreplicas = 3\n", nil, "c.toml:2: bus.replicas: the embedded server is one server"},
		{"user without password", "[bus]\nuser = \"worker\"\n", nil, "c.toml:2: bus.user: needs a password: set SHARDTOP_BUS_PASSWORD or bus.password_file"},
		{"user and env token", "[bus]\nuser = \"worker\"\n", map[string]string{"SHARDTOP_BUS_TOKEN": busSecretToken}, "c.toml:2: bus.user: is not used with a token"},
		{"password without user", "", map[string]string{"SHARDTOP_BUS_PASSWORD": busSecretPassword}, "SHARDTOP_BUS_PASSWORD: is set, but bus.user is not"},
		{"missing token file", "[bus]\ntoken_file = \"missing\"\n", nil, "c.toml:2: bus.token_file: stat " + filepath.Join(dir, "missing")},
		{"empty token file", fmt.Sprintf("[bus]\ntoken_file = %q\n", emptyFile), nil, "c.toml:2: bus.token_file: " + emptyFile + " is empty"},
		{"token file of two lines", fmt.Sprintf("[bus]\ntoken_file = %q\n", twoLines), nil, "c.toml:2: bus.token_file: " + twoLines + " holds a line break"},
		{"token file a directory", fmt.Sprintf("[bus]\ntoken_file = %q\n", dir), nil, "c.toml:2: bus.token_file:"},
		{"creds_file missing", "[bus]\nmode = \"external\"\nurl = \"nats://a:1\"\ncreds_file = \"nope.creds\"\n", nil, "c.toml:4: bus.creds_file:"},
		{"creds_file and env", fmt.Sprintf("[bus]\nmode = \"external\"\nurl = \"nats://a:1\"\ncreds_file = %q\n", credsFile),
			map[string]string{"SHARDTOP_BUS_TOKEN": busSecretToken}, "c.toml:4: bus.creds_file: goes alone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parse(tc.text).ResolveBus(envMap(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("%v is not a *config.Error", err)
			}
			if err != nil && (strings.Contains(err.Error(), "never-shown") || strings.Contains(err.Error(), "\nmore")) {
				t.Errorf("the error shows a secret: %v", err)
			}
		})
	}

	// Credentials never show: not in the config, the creds, nor a log.
	creds, _, _ = withUser.ResolveBus(noEnv)
	logs := &syncbuf.Buffer{}
	slog.New(slog.NewTextHandler(logs, nil)).Info("bus", "creds", creds, "cfg", withUser)
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", creds, creds, creds), fmt.Sprint(withUser), logs.String()} {
		if strings.Contains(s, busSecretPassword) {
			t.Errorf("the password shows: %s", s)
		}
	}
}
