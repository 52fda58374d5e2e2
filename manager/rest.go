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
	u := strings.TrimRight(m.cfg.apiURL, "/") + "/gateway/bot"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return gb, fmt.Errorf("manager: GET /gateway/bot: option WithAPIURL %q: %w", m.cfg.apiURL, err)
	}
	req.Header.Set("Authorization", "Bot "+m.token.v)
	req.Header.Set("User-Agent", "DiscordBot (https://github.com/shardtop/shardtop, 1) shardtop")
	resp, err := m.cfg.httpClient.Do(req)
	if err != nil {
		// url.Error names the URL, never the header: the token stays out.
		return gb, fmt.Errorf("manager: GET /gateway/bot: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRESTBody))
	if err != nil {
		return gb, fmt.Errorf("manager: GET /gateway/bot: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return gb, &HTTPError{Status: resp.StatusCode, Body: excerpt(body)}
	}
	if err := json.Unmarshal(body, &gb); err != nil {
		return gb, fmt.Errorf("manager: GET /gateway/bot: bad JSON: %w", err)
	}
	switch {
	case gb.URL == "":
		return gb, fmt.Errorf("manager: GET /gateway/bot: answer has no url")
	case gb.Shards < 1:
		return gb, fmt.Errorf("manager: GET /gateway/bot: answer has shards = %d", gb.Shards)
	case gb.SessionStartLimit.MaxConcurrency < 1:
		return gb, fmt.Errorf("manager: GET /gateway/bot: answer has max_concurrency = %d", gb.SessionStartLimit.MaxConcurrency)
	}
	return gb, nil
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
