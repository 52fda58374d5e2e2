// Command embed is a bot that runs its shards with shardtop's manager and
// shows them in shardtop's terminal UI, counting the MESSAGE_CREATE events
// it receives.
//
//	DISCORD_TOKEN=... go run ./examples/embed   against Discord
//	go run ./examples/embed                     offline, against an in-process discordsim
//
// Press q (or send SIGINT/SIGTERM) to stop: every shard is closed resumable
// and its session saved, so the next run resumes instead of identifying.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/shardtop/shardtop/discordsim"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/store"
	"github.com/shardtop/shardtop/tui"
)

// intents are GUILDS | GUILD_MESSAGES: enough for MESSAGE_CREATE in guilds.
const intents = 1<<0 | 1<<9

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

func run() error {
	// The first SIGINT/SIGTERM ends ctx, which ends the TUI; then we close.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	token, apiURL, statePath := os.Getenv("DISCORD_TOKEN"), manager.DefaultAPIURL, "embed-state.toml"
	if token == "" {
		// Offline: a fake Discord on loopback. Its sessions die with it, so
		// keep them in a temporary state file rather than next to the code.
		sim, err := discordsim.Start(discordsim.Config{
			Addr: "127.0.0.1:0", Shards: 4, MaxConcurrency: 2, EventRate: 5,
		})
		if err != nil {
			return err
		}
		defer sim.Close()
		dir, err := os.MkdirTemp("", "shardtop-embed-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		token, apiURL, statePath = discordsim.DefaultToken, sim.APIURL(), filepath.Join(dir, "state.toml")
	}

	b, err := newBot(token, apiURL, statePath)
	if err != nil {
		return err
	}
	// Open resumes the shards saved in the state file and queues the rest
	// for identify; it returns once every shard is started, not ready.
	if err := b.shards.Open(ctx); err != nil {
		return errors.Join(err, b.close())
	}
	err = tui.Run(ctx, b.shards,
		// Signals are ours (NotifyContext above), not Bubble Tea's.
		tui.WithProgramOptions(tea.WithoutSignalHandler()))
	err = errors.Join(err, b.close())
	fmt.Printf("%d MESSAGE_CREATE received\n", b.messages.Load())
	return err
}

// bot is the application: its state file, its shards and what it counts.
type bot struct {
	state    *store.File
	shards   *manager.Manager
	messages atomic.Int64
}

// newBot opens the state file (locking it) and builds the shard manager.
// It does no network I/O: Open connects.
func newBot(token, apiURL, statePath string) (*bot, error) {
	// Log nothing while the TUI owns the terminal.
	quiet := slog.New(slog.DiscardHandler)
	st, err := store.OpenFile(statePath, store.WithLogger(quiet))
	if err != nil {
		return nil, err
	}
	b := &bot{state: st}
	b.shards, err = manager.New(token,
		manager.WithAPIURL(apiURL),
		manager.WithStore(st),
		manager.WithDispatchHandler(b.onDispatch),
		manager.WithGatewayOptions(gateway.WithIntents(intents)),
		manager.WithLogger(quiet),
	)
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	return b, nil
}

// onDispatch runs on the shard's goroutine for every event: keep it quick,
// and copy d.Data if you keep it (it is only valid during the call).
func (b *bot) onDispatch(d gateway.Dispatch) {
	if d.Event == "MESSAGE_CREATE" {
		b.messages.Add(1)
	}
}

// close closes every shard resumable, saves the sessions and releases the
// state file.
func (b *bot) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(b.shards.Close(ctx), b.state.Close())
}
