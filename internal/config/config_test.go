package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardtop/shardtop/internal/filetest"
	"github.com/shardtop/shardtop/internal/secret"
	"github.com/shardtop/shardtop/store"
)

const secretToken = "MTIzNDU2Nzg5.secret-token-never-shown.0123456789abcdef"

// tomlKeys lists the keys of Config's exported fields, as a config file
// writes them: "shard_count", and "bus.mode" for a key of a table.
func tomlKeys(t *testing.T) []string {
	t.Helper()
	return structKeys(t, reflect.TypeFor[Config](), "")
}

// structKeys lists the keys of rt's exported fields, each after prefix;
// a struct field is a table (except Duration, ShardIDs and the like,
// which are values).
func structKeys(t *testing.T, rt reflect.Type, prefix string) []string {
	t.Helper()
	var keys []string
	for i := range rt.NumField() {
		f := rt.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("toml")
		if tag == "" {
			t.Fatalf("%s.%s has no toml tag", rt.Name(), f.Name)
		}
		if isTable(f.Type) {
			keys = append(keys, structKeys(t, f.Type, prefix+tag+".")...)
			continue
		}
		keys = append(keys, prefix+tag)
	}
	return keys
}

// isTable reports whether a field of type ft is a TOML table of the config.
func isTable(ft reflect.Type) bool {
	return ft.Kind() == reflect.Struct && ft != reflect.TypeFor[secret.Token]()
}

// keyInText finds the line that sets key in a config text: a top-level
// key before the first table, a key of a table after the table's header.
func keyInText(text []byte, key string) bool {
	table, name := "", key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		table, name = key[:i], key[i+1:]
	}
	header := regexp.MustCompile(`(?m)^\[[^\]]*\]`)
	body := text
	if table == "" {
		if loc := header.FindIndex(text); loc != nil {
			body = text[:loc[0]]
		}
	} else {
		start := regexp.MustCompile(`(?m)^\[` + regexp.QuoteMeta(table) + `\]`).FindIndex(text)
		if start == nil {
			return false
		}
		body = text[start[1]:]
		if loc := header.FindIndex(body); loc != nil {
			body = body[:loc[0]]
		}
	}
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` = `).Match(body)
}

func TestExampleConfigDocumentsEveryKeyWithItsDefault(t *testing.T) {
	text, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range tomlKeys(t) {
		if !keyInText(text, key) {
			t.Errorf("config.example.toml does not set %q (every key must be shown with its default)", key)
		}
	}
	// Loading the example must give exactly the defaults: the documented
	// values are the real ones.
	got, err := Parse("", string(text))
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	want := Default()
	got.lines, got.file = nil, ""
	if len(got.ShardIDs) == 0 {
		got.ShardIDs = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example config differs from the defaults:\n got %v\nwant %v", got, want)
	}
}

func TestLoadConfigValues(t *testing.T) {
	dir := t.TempDir()
	p := filetest.Write(t, dir, "shardtop.toml", `
api_url = "http://127.0.0.1:1234/api/v10"
intents = 1
shard_count = 32
shard_ids = [0, "4-6", 9, "12-13,20"]
max_concurrency = 16
compression = "zlib-stream"
large_threshold = 250
state_file = "state/sessions.toml"
token_file = "/etc/shardtop/token"
auto_reshard = true
split_count = 4
identify_window = "100ms"
identify_margin = "0s"
session_start_reserve = 0
metrics_addr = ":9464"
log_level = "debug"
log_format = "json"
refresh = "1s"
`, 0o600)
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ShardIDs{0, 4, 5, 6, 9, 12, 13, 20}); !slices.Equal(cfg.ShardIDs, want) {
		t.Errorf("shard_ids = %v, want %v", cfg.ShardIDs, want)
	}
	if got := cfg.ShardIDs.String(); got != "0,4-6,9,12-13,20" {
		t.Errorf("ShardIDs.String() = %q", got)
	}
	if cfg.StateFile != filepath.Join(dir, "state/sessions.toml") {
		t.Errorf("state_file = %q, want it relative to the config file", cfg.StateFile)
	}
	if cfg.TokenFile != "/etc/shardtop/token" {
		t.Errorf("token_file = %q", cfg.TokenFile)
	}
	if time.Duration(cfg.IdentifyWindow) != 100*time.Millisecond || cfg.IdentifyMargin != 0 || time.Duration(cfg.Refresh) != time.Second {
		t.Errorf("durations: window %s margin %s refresh %s", cfg.IdentifyWindow, cfg.IdentifyMargin, cfg.Refresh)
	}
	if cfg.ShardCount != 32 || cfg.MaxConcurrency != 16 || cfg.Compression != "zlib-stream" || cfg.LargeThreshold != 250 ||
		!cfg.AutoReshard || cfg.SplitCount != 4 || cfg.SessionStartReserve != 0 || cfg.MetricsAddr != ":9464" ||
		cfg.LogLevel != "debug" || cfg.LogFormat != "json" || cfg.Intents != 1 {
		t.Errorf("unexpected values: %v", cfg)
	}

	whole, err := Parse("x.toml", `shard_count = 16`+"\n"+`shard_ids = "0-15"`)
	if err != nil || len(whole.ShardIDs) != 16 || whole.ShardIDs[15] != 15 {
		t.Errorf("shard_ids as one range string: %v, %v", whole.ShardIDs, err)
	}
}

func TestConfigErrorsNameFileLineAndKey(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string // substrings of the error, e.g. "c.toml:3: key"
	}{
		{"unknown key", "shard_count = 4\n\nshardcount = 4\n", []string{"c.toml:3: shardcount: unknown key"}},
		{"unknown table", "shard_count = 4\n[metrics]\naddr = \":1\"\n", []string{"c.toml:2: metrics: unknown key"}},
		{"wrong type int", "intents = 1\nshard_count = \"four\"\n", []string{"c.toml:2: shard_count:", "incompatible types"}},
		{"wrong type bool", "auto_reshard = \"yes\"\n", []string{"c.toml:1: auto_reshard:"}},
		{"duration as number", "\nidentify_window = 5\n", []string{"c.toml:2: identify_window:", "duration string"}},
		{"bad duration", "refresh = \"fast\"\n", []string{"c.toml:1: refresh:", "bad duration"}},
		{"syntax", "shard_count = = 4\n", []string{"c.toml:1: shard_count:"}},
		{"negative count", "# comment\nshard_count = -1\n", []string{"c.toml:2: shard_count: must be 0"}},
		{"large threshold", "large_threshold = 300\n", []string{"c.toml:1: large_threshold: must be between 50 and 250"}},
		{"compression", "\n\n  compression = \"gzip\"\n", []string{"c.toml:3: compression:", "gzip"}},
		{"split count", "split_count = 1\n", []string{"c.toml:1: split_count: must be at least 2"}},
		{"window", "identify_window = \"0s\"\n", []string{"c.toml:1: identify_window: must be positive"}},
		{"margin", "identify_margin = \"-1s\"\n", []string{"c.toml:1: identify_margin: must not be negative"}},
		{"refresh", "refresh = \"1ms\"\n", []string{"c.toml:1: refresh: must be at least 10ms"}},
		{"api url", "api_url = \"discord.com\"\n", []string{"c.toml:1: api_url: must be an http"}},
		{"metrics addr", "metrics_addr = \"9464\"\n", []string{"c.toml:1: metrics_addr: must be HOST:PORT"}},
		{"log level", "log_level = \"loud\"\n", []string{"c.toml:1: log_level:", "loud"}},
		{"log format", "log_format = \"xml\"\n", []string{"c.toml:1: log_format:", "xml"}},
		{"bad range", "shard_count = 16\nshard_ids = [\"9-2\"]\n", []string{"c.toml:2: shard_ids:", "9-2"}},
		{"range garbage", "shard_count = 16\nshard_ids = [\"a-b\"]\n", []string{"c.toml:2: shard_ids:", "a-b"}},
		{"ids without count", "shard_ids = [1]\n", []string{"c.toml:1: shard_ids: needs a fixed shard_count"}},
		{"id beyond count", "shard_count = 4\nshard_ids = \"0-4\"\n", []string{"c.toml:2: shard_ids: shard 4 is not below shard_count 4"}},
		{"negative concurrency", "max_concurrency = -2\n", []string{"c.toml:1: max_concurrency:"}},
		{"two problems", "split_count = 1\nbogus = 2\n", []string{"c.toml:1: split_count:", "c.toml:2: bogus: unknown key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.toml", tc.text)
			if err == nil {
				t.Fatalf("no error for %q", tc.text)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error %v (%T) is not a *config.Error", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestResolveToken(t *testing.T) {
	dir := t.TempDir()
	noEnv := func(string) string { return "" }
	env := func(k string) string {
		if k == tokenEnv {
			return " env-token\n"
		}
		return ""
	}
	private := filetest.Write(t, dir, "token", secretToken+"\n", 0o600)
	shared := filetest.Write(t, dir, "token-shared", secretToken, 0o644)
	cfgFile := filetest.Write(t, dir, "open.toml", `token = "`+secretToken+`"`, 0o644)

	cfg := Default()
	cfg.TokenFile = private
	cfg.Token = secret.New("config-token")
	if tok, src, w, err := cfg.ResolveToken(env); err != nil || tok != "env-token" || src != tokenEnv || len(w) != 0 {
		t.Errorf("DISCORD_TOKEN first: %q from %q %v %v", tok, src, w, err)
	}
	if tok, src, w, err := cfg.ResolveToken(noEnv); err != nil || tok != secretToken || src != "token_file "+private || len(w) != 0 {
		t.Errorf("token_file second: %q from %q %v %v", tok, src, w, err)
	}
	cfg.TokenFile = shared
	tok, _, w, err := cfg.ResolveToken(noEnv)
	if err != nil || tok != secretToken || len(w) != 1 || !strings.Contains(w[0], shared) || !strings.Contains(w[0], "chmod 600") {
		t.Errorf("shared token file must warn: %q %v %v", tok, w, err)
	}
	if strings.Contains(strings.Join(w, ""), secretToken) {
		t.Errorf("the warning shows the token")
	}

	fromFile, err := Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	tok, src, w, err := fromFile.ResolveToken(noEnv)
	if err != nil || tok != secretToken || len(w) != 1 || !strings.Contains(w[0], cfgFile) {
		t.Errorf("token in a world-readable config must warn: %v %v", w, err)
	}
	if src != "token in "+cfgFile+":1" {
		t.Errorf("source of the config's token = %q, want it to name %s:1", src, cfgFile)
	}

	cfg = Default()
	if _, _, _, err := cfg.ResolveToken(noEnv); !errors.Is(err, ErrNoToken) {
		t.Errorf("no token: %v, want ErrNoToken", err)
	}
	cfg.TokenFile = filepath.Join(dir, "missing")
	if _, _, _, err := cfg.ResolveToken(noEnv); err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Errorf("missing token file: %v", err)
	}
}

func TestConfigNeverShowsTheToken(t *testing.T) {
	cfg, err := Parse("c.toml", `token = "`+secretToken+`"`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Token.Reveal() != secretToken {
		t.Fatalf("token not read")
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "cfg", cfg)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "cfg", cfg)
	for _, s := range []string{
		fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), fmt.Sprintf("%v", &cfg), buf.String(),
	} {
		if strings.Contains(s, secretToken) || strings.Contains(s, "secret-token") {
			t.Errorf("token shown: %s", s)
		}
		if !strings.Contains(s, "REDACTED") {
			t.Errorf("no redaction marker in %s", s)
		}
	}
	// A bad value next to the token: the error names the key, not the token.
	_, err = Parse("c.toml", `token = "`+secretToken+`"`+"\nshard_count = \""+secretToken+"\"\n")
	if err == nil || strings.Contains(err.Error(), secretToken) {
		t.Errorf("error shows the token or is nil: %v", err)
	}
	// Malformed token lines: the parser quotes what it choked on, which is
	// the token; the error must still name file, line and key, not the text.
	bare := strings.NewReplacer("-", "", "_", "").Replace(secretToken)
	for _, text := range []string{
		"token = " + bare + "\n",
		"api_url = \"http://x\"\ntoken = \"" + bare + "\n",
		"token = '" + bare + "\n",
		"token = \"\"\"" + bare + "\n",
		"token = " + bare + "\"\n",
	} {
		_, err := Parse("c.toml", text)
		if err == nil {
			t.Errorf("%q parsed", text)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, bare[:6]) {
			t.Errorf("error quotes the token: %s", msg)
		}
		if !strings.Contains(msg, "c.toml:") {
			t.Errorf("error does not name the file and line: %s", msg)
		}
	}
}

// TestConfigBounds: every integer and duration key has an upper bound.
// shard_count = 9223372036854775807 used to panic in the manager
// (makeslice: len out of range), 4294967296 ran out of memory, and
// max_concurrency = 1000000 made every /metrics scrape 50 MB.
func TestConfigBounds(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"shard_count = 9223372036854775807\n", "c.toml:1: shard_count: must be 0 (Discord's recommendation) up to 65536, got 9223372036854775807"},
		{"# big\nshard_count = 4294967296\n", "c.toml:2: shard_count: must be 0 (Discord's recommendation) up to 65536, got 4294967296"},
		{"shard_count = 65537\n", "c.toml:1: shard_count: must be 0 (Discord's recommendation) up to 65536, got 65537"},
		{"max_concurrency = 1000000\n", "c.toml:1: max_concurrency: must be 0 (from Discord) up to 1024, got 1000000"},
		{"max_concurrency = 1025\n", "c.toml:1: max_concurrency: must be 0 (from Discord) up to 1024, got 1025"},
		{"shard_count = 16\nshard_ids = [65536]\n", "c.toml:2: shard_ids: shard ID 65536 is not below 65536, the largest shard count"},
		{"shard_count = 16\nshard_ids = [9223372036854775807]\n", "c.toml:2: shard_ids: shard ID 9223372036854775807 is not below 65536"},
		{"shard_count = 16\nshard_ids = \"0-9223372036854775807\"\n", "c.toml:2: shard_ids: bad shard range \"0-9223372036854775807\": shard IDs are below 65536"},
		{"shard_count = 16\nshard_ids = [\"65530-65536\"]\n", "c.toml:2: shard_ids: bad shard range \"65530-65536\": shard IDs are below 65536"},
		{"split_count = 9223372036854775807\n", "c.toml:1: split_count: must be at least 2 and at most 64, got 9223372036854775807"},
		{"intents = 9223372036854775807\n", "c.toml:1: intents: must be a non-negative intent bit set of at most 2147483647"},
		{"large_threshold = 9223372036854775807\n", "c.toml:1: large_threshold: must be between 50 and 250"},
		{"identify_window = \"2562047h\"\n", "c.toml:1: identify_window: must be positive and at most 1h0m0s, got 2562047h0m0s"},
		{"identify_margin = \"2562047h\"\n", "c.toml:1: identify_margin: must not be negative nor above 1m0s, got 2562047h0m0s"},
		{"refresh = \"2562047h\"\n", "c.toml:1: refresh: must be at least 10ms and at most 1m0s, got 2562047h0m0s"},
	} {
		_, err := Parse("c.toml", tc.text)
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want a *config.Error containing %q", tc.text, err, tc.want)
		}
	}
	// The bounds themselves are accepted: no real bot is refused.
	cfg, err := Parse("c.toml", "shard_count = 65536\nshard_ids = \"65000-65535\"\nmax_concurrency = 1024\nsplit_count = 64\n"+
		"identify_window = \"1h\"\nidentify_margin = \"1m\"\nrefresh = \"1m\"\nintents = 2147483647\n")
	if err != nil || cfg.ShardCount != store.MaxShardCount || cfg.MaxConcurrency != store.MaxMaxConcurrency || len(cfg.ShardIDs) != 536 {
		t.Errorf("the largest values: %v (%d IDs), %v", cfg, len(cfg.ShardIDs), err)
	}
}

// TestExtremeValuesNeverPanic feeds every integer and duration key of
// Config (found by reflection, so a new key is covered too) the extremes a
// TOML file can hold. Each is either refused with a *config.Error naming
// the file, line and key, or accepted within its bound; only
// session_start_reserve takes any size (the limiter caps it).
func TestExtremeValuesNeverPanic(t *testing.T) {
	unbounded := map[string]bool{"session_start_reserve": true}
	// Values a key takes within its bound: a stream of 2 or 4 GiB, or
	// kept 1000 hours, is a choice a bot may make.
	withinBound := map[string]bool{`bus.max_bytes = 4294967296`: true, `bus.max_bytes = 2147483648`: true, `bus.max_age = "1000h"`: true,
		`bus.buffer_bytes = 4294967296`: true, `bus.buffer_bytes = 2147483648`: true}
	ints := []string{"9223372036854775807", "-9223372036854775808", "4294967296", "2147483648", "-1"}
	durations := []string{`"2562047h47m16.854775807s"`, `"-2562047h47m16.854775808s"`, `"2562047h"`, `"1000h"`}
	tried := 0
	var try func(rt reflect.Type, table string)
	try = func(rt reflect.Type, table string) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			key := f.Tag.Get("toml")
			var values []string
			switch {
			case !f.IsExported():
				continue
			case isTable(f.Type) && f.Type != reflect.TypeFor[Duration]():
				try(f.Type, key)
				continue
			case f.Type == reflect.TypeFor[Duration]():
				values = durations
			case f.Type.Kind() == reflect.Int || f.Type.Kind() == reflect.Int64:
				values = ints
			case f.Type == reflect.TypeFor[ShardIDs]():
				values = []string{"[9223372036854775807]", "[-9223372036854775808]", `"0-9223372036854775807"`, `"9223372036854775806-9223372036854775807"`, `"0-99999999999999999999"`}
			default:
				continue
			}
			name := key
			if table != "" {
				name = table + "." + key
			}
			for _, v := range values {
				tried++
				text := "# extremes\n" + key + " = " + v + "\n"
				switch {
				case table != "":
					text = "[" + table + "]\n" + text
				case key == "shard_ids":
					text = "shard_count = 16\n" + text
				}
				cfg, err := parseNoPanic(t, text)
				switch {
				case err != nil:
					var ce *Error
					if !errors.As(err, &ce) || !strings.Contains(err.Error(), "c.toml:") || !strings.Contains(err.Error(), ": "+name+": ") {
						t.Errorf("%s = %s: error %q does not name c.toml, its line and the key", name, v, err)
					}
				case unbounded[name] || withinBound[name+" = "+v]:
				default:
					t.Errorf("%s = %s accepted: %v", name, v, cfg)
				}
			}
		}
	}
	try(reflect.TypeFor[Config](), "")
	if tried < 60 {
		t.Errorf("only %d values tried: the reflection found too few keys", tried)
	}
}

// parseNoPanic is Parse("c.toml", text), failing the test on a panic.
func parseNoPanic(t *testing.T, text string) (cfg Config, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Parse(%q) panicked: %v", text, r)
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return Parse("c.toml", text)
}

// TestResolveTokenRefusesMalformed: a token with a line break used to
// reach the HTTP client ("invalid header field value for Authorization",
// exit 1). A token that cannot be a bot token is refused by ResolveToken,
// naming its source and never showing it; a pasted "Bot " is removed with
// a warning, and an OAuth2 "Bearer " token is explained.
func TestResolveTokenRefusesMalformed(t *testing.T) {
	dir := t.TempDir()
	envOf := func(v string) func(string) string {
		return func(k string) string {
			if k == tokenEnv {
				return v
			}
			return ""
		}
	}
	noEnv := envOf("")
	cfg := Default()
	for _, tc := range []struct{ raw, what string }{
		{secretToken + "\nX-Evil: 1", "a line break"},
		{secretToken + "\r\nX-Evil: 1", "a line break"},
		{"MTIz secret-token", "a space or tab"},
		{"MTIz\tsecret-token", "a space or tab"},
		{"MTIz\x00secret-token", "a control character"},
		{"MTIz\x7fsecret-token", "a control character"},
		{"MTIzé-secret-token", "a non-ASCII character"},
		{"Bearer " + secretToken, "OAuth2 access token"},
		{"bearer " + secretToken, "OAuth2 access token"},
		{"Bot \n", "empty"},
	} {
		_, _, _, err := cfg.ResolveToken(envOf(tc.raw))
		var te *TokenError
		if !errors.As(err, &te) || !errors.Is(err, ErrBadToken) || te.Source != tokenEnv ||
			!strings.Contains(err.Error(), "bot token from DISCORD_TOKEN") || !strings.Contains(err.Error(), tc.what) {
			t.Errorf("DISCORD_TOKEN=%q: %v; want a *TokenError from DISCORD_TOKEN saying %q", tc.raw, err, tc.what)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "secret-token") || strings.Contains(msg, "X-Evil") || strings.Contains(msg, "MTIz") {
			t.Errorf("the error shows the token: %s", msg)
		}
	}

	// The same checks for token_file and token, each named.
	file := filetest.Write(t, dir, "token", secretToken+"\nsecond line\n", 0o600)
	cfg.TokenFile = file
	if _, _, _, err := cfg.ResolveToken(noEnv); !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), "bot token from token_file "+file+": ") ||
		strings.Contains(err.Error(), "secret-token") {
		t.Errorf("token_file with two lines: %v", err)
	}
	inConfig, err := Parse(filepath.Join(dir, "c.toml"), "# bot\n\ntoken = \"MTIz\\tsecret-token\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := inConfig.ResolveToken(noEnv); !errors.Is(err, ErrBadToken) ||
		!strings.Contains(err.Error(), "bot token from token in "+filepath.Join(dir, "c.toml")+":3: ") || strings.Contains(err.Error(), "secret-token") {
		t.Errorf("token with a tab in the config: %v", err)
	}

	// A pasted "Bot " prefix: removed, with a warning naming the source.
	for _, raw := range []string{"Bot " + secretToken, "  bot  " + secretToken + "\n"} {
		tok, src, w, err := Default().ResolveToken(envOf(raw))
		if err != nil || tok != secretToken || src != tokenEnv || len(w) != 1 ||
			!strings.Contains(w[0], "bot token from DISCORD_TOKEN starts with") || !strings.Contains(w[0], "removed") {
			t.Errorf("DISCORD_TOKEN=%q: %q from %q, warnings %q, %v; want the token without the prefix and a warning", raw, tok, src, w, err)
		}
		if strings.Contains(strings.Join(w, ""), "secret-token") {
			t.Errorf("the warning shows the token: %q", w)
		}
	}
}

// TestTokenFileRegularAndBounded: token_file is read only if it is a
// regular file of at most MaxTokenFileSize bytes.
func TestTokenFileRegularAndBounded(t *testing.T) {
	dir := t.TempDir()
	noEnv := func(string) string { return "" }
	cfg := Default()
	big := filetest.Write(t, dir, "big-token", strings.Repeat("x", MaxTokenFileSize+1), 0o600)
	cfg.TokenFile = big
	var ce *Error
	if _, _, _, err := cfg.ResolveToken(noEnv); !errors.As(err, &ce) || ce.Key != "token_file" || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), "4 KiB") {
		t.Errorf("token_file over the limit: %v; want a *config.Error naming token_file, %s and the 4 KiB limit", err, big)
	}
	cfg.TokenFile = dir
	if _, _, _, err := cfg.ResolveToken(noEnv); !errors.As(err, &ce) || ce.Key != "token_file" || !strings.Contains(err.Error(), "directory") {
		t.Errorf("token_file that is a directory: %v", err)
	}
}

// TestLoadConfigTooLarge: the config file is read up to MaxFileSize;
// a larger one is an error naming it and the limit.
func TestLoadConfigTooLarge(t *testing.T) {
	dir := t.TempDir()
	p := filetest.Write(t, dir, "big.toml", "# padding\n"+strings.Repeat("#", MaxFileSize), 0o600)
	_, err := Load(p)
	var ce *Error
	if !errors.As(err, &ce) || ce.File != p || !strings.Contains(err.Error(), "1 MiB") {
		t.Errorf("Load of a file over 1 MiB: %v; want a *config.Error naming %s and the limit", err, p)
	}
	// A link to a regular config is followed: users link configs into place.
	link := filepath.Join(dir, "link.toml")
	target := filetest.Write(t, dir, "real.toml", "shard_count = 3\n", 0o600)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if cfg, err := Load(link); err != nil || cfg.ShardCount != 3 {
		t.Errorf("Load through a link: %v, %v", cfg, err)
	}
}
