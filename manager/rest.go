package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shardtop/shardtop/store"
)

// GatewayBot is the answer of GET /gateway/bot.
type GatewayBot struct {
	URL               string `json:"url"`
	Shards            int    `json:"shards"`
	SessionStartLimit struct {
		Total          int   `json:"total"`
		Remaining      int   `json:"remaining"`
		ResetAfter     int64 `json:"reset_after"` // milliseconds
		MaxConcurrency int   `json:"max_concurrency"`
	} `json:"session_start_limit"`
}

// maxRESTBody bounds how much of a REST answer is read.
const maxRESTBody = 1 << 20

// fetchGatewayBot asks Discord for the gateway URL, the recommended shard
// count and the session start limit. A 401 is ErrUnauthorized, never retried.
func (m *Manager) fetchGatewayBot(ctx context.Context) (GatewayBot, error) {
	var gb GatewayBot
	if err := m.getJSON(ctx, "/gateway/bot", &gb); err != nil {
		return gb, err
	}
	switch {
	case gb.URL == "":
		return gb, fmt.Errorf("manager: GET /gateway/bot: answer has no url")
	case gb.Shards < 1:
		return gb, fmt.Errorf("manager: GET /gateway/bot: answer has shards = %d", gb.Shards)
	case gb.Shards > store.MaxShardCount:
		return gb, fmt.Errorf("manager: GET /gateway/bot: answer has shards = %d, more than %d (the largest shard count supported)", gb.Shards, store.MaxShardCount)
	case gb.SessionStartLimit.MaxConcurrency < 1:
		return gb, fmt.Errorf("manager: GET /gateway/bot: answer has max_concurrency = %d", gb.SessionStartLimit.MaxConcurrency)
	case gb.SessionStartLimit.MaxConcurrency > store.MaxMaxConcurrency:
		return gb, fmt.Errorf("manager: GET /gateway/bot: answer has max_concurrency = %d, more than %d (the largest supported)", gb.SessionStartLimit.MaxConcurrency, store.MaxMaxConcurrency)
	}
	return gb, nil
}

// refreshGatewayBot asks /gateway/bot again and applies what changed: the
// recommended shard count (the loop's) and the session-start budget (the
// limiter's), which Discord knows better than the limiter's own accounting.
func (m *Manager) refreshGatewayBot(ctx context.Context) (GatewayBot, error) {
	gb, err := m.fetchGatewayBot(ctx)
	if err != nil {
		return gb, err
	}
	if lim := m.view.Load().lim; lim != nil {
		lim.SetSessionStartLimit(gb.SessionStartLimit.Total, gb.SessionStartLimit.Remaining, gb.resetAfter())
	}
	m.send(func(l *loop) {
		if l.recommended != gb.Shards {
			l.recommended, l.dirty = gb.Shards, true
		}
	})
	return gb, nil
}

// refresher keeps the budget and the recommendation fresh while open.
func (m *Manager) refresher() {
	defer m.workers.Done()
	tick := time.NewTicker(m.cfg.refreshInterval)
	defer tick.Stop()
	for {
		select {
		case <-m.runCtx.Done():
			return
		case <-tick.C:
			if _, err := m.refreshGatewayBot(m.runCtx); err != nil && m.runCtx.Err() == nil {
				m.log.Warn("GET /gateway/bot failed; keeping the last budget", "err", err)
			}
		}
	}
}

// fetchBotUser asks Discord who the bot is (GET /users/@me), so the bot
// user is known before any READY, and even when every shard resumes and no
// READY comes at all. A 401 is ErrUnauthorized.
func (m *Manager) fetchBotUser(ctx context.Context) (User, error) {
	var u User
	if err := m.getJSON(ctx, "/users/@me", &u); err != nil {
		return u, err
	}
	if u.ID == "" {
		return u, fmt.Errorf("manager: GET /users/@me: answer has no id")
	}
	return u, nil
}

// getJSON GETs path under the API URL with the bot token and decodes a 200
// answer into v. Other statuses are an *HTTPError (401: ErrUnauthorized).
func (m *Manager) getJSON(ctx context.Context, path string, v any) error {
	u := strings.TrimRight(m.cfg.apiURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("manager: GET %s: option WithAPIURL %q: %w", path, m.cfg.apiURL, err)
	}
	req.Header.Set("Authorization", "Bot "+m.token.Reveal())
	req.Header.Set("User-Agent", "DiscordBot (https://github.com/shardtop/shardtop, 1) shardtop")
	resp, err := m.cfg.httpClient.Do(req)
	if err != nil {
		// url.Error names the URL, never the header: the token stays out.
		return fmt.Errorf("manager: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRESTBody))
	if err != nil {
		return fmt.Errorf("manager: GET %s: reading the answer: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &HTTPError{Path: path, Status: resp.StatusCode, Body: excerpt(body)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("manager: GET %s: bad JSON: %w", path, err)
	}
	return nil
}

func (gb GatewayBot) resetAfter() time.Duration {
	return time.Duration(gb.SessionStartLimit.ResetAfter) * time.Millisecond
}

// excerpt returns the start of a body as printable text for an error.
func excerpt(b []byte) string {
	const n = 200
	if len(b) > n {
		b = b[:n]
	}
	s := strings.ToValidUTF8(string(b), string(utf8.RuneError))
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
