package simproc

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shardtop/shardtop/discordsim"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if code, ok := RunIfChild(); ok {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}

// TestStart runs a real child and checks that the config reached it (REST
// answers with its shard count and concurrency), that Stats and Post work,
// and that Close ends it cleanly.
func TestStart(t *testing.T) {
	const token = "simproc-token"
	c := Start(t, discordsim.Config{Token: token, Shards: 3, MaxConcurrency: 2, Guilds: 5,
		IdentifyWindow: time.Millisecond, Seed: 1})
	if !strings.HasPrefix(c.API, c.Base) || !strings.HasPrefix(c.Gateway, "ws://"+strings.TrimPrefix(c.Base, "http://")) {
		t.Fatalf("URLs disagree: API %q Gateway %q Base %q", c.API, c.Gateway, c.Base)
	}
	req, err := http.NewRequest(http.MethodGet, c.API+"/gateway/bot", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bot "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var bot struct {
		URL    string `json:"url"`
		Shards int    `json:"shards"`
		Limit  struct {
			MaxConcurrency int `json:"max_concurrency"`
		} `json:"session_start_limit"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/gateway/bot: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&bot); err != nil {
		t.Fatal(err)
	}
	if bot.URL != c.Gateway || bot.Shards != 3 || bot.Limit.MaxConcurrency != 2 {
		t.Fatalf("/gateway/bot = %+v, want url %s, 3 shards, max_concurrency 2", bot, c.Gateway)
	}
	if st := c.Stats(t); st.ActiveConnections != 0 || st.Identifies != 0 {
		t.Fatalf("fresh child stats %+v", st)
	}
	c.Post(t, "/_sim/rate?per_shard=0")
	c.Close(t)
	c.Close(t) // idempotent
	if _, err := http.Get(c.Base + "/_sim/stats"); err == nil {
		t.Fatal("child still serving after Close")
	}
}

// TestRunBadConfig: a config the child cannot decode is exit code 2 with the
// variable named, and nothing on stdout.
func TestRunBadConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run("{not json", strings.NewReader(""), &stdout, &stderr); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), configEnv) {
		t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

// TestRunUntilStdinCloses: run serves, prints its three URLs, and returns 0
// once stdin is at EOF.
func TestRunUntilStdinCloses(t *testing.T) {
	var stdout bytes.Buffer
	if code := run(`{"Shards":1,"Seed":1}`, strings.NewReader(""), &stdout, io.Discard); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	f := strings.Fields(stdout.String())
	if len(f) != 3 || !strings.HasSuffix(f[0], "/api/v10") || !strings.HasPrefix(f[1], "ws://") || !strings.HasPrefix(f[2], "http://") {
		t.Fatalf("printed %q", stdout.String())
	}
}
