package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/term"

	"github.com/shardtop/shardtop/internal/config"
	"github.com/shardtop/shardtop/tui"
)

// runInteractive shows the TUI until the user quits (q) or ctx ends (a
// signal); the caller then closes every shard resumable.
// The bus panel shows b's figures (nil: the bus is off, no panel).
func runInteractive(ctx context.Context, m tui.Manager, b tui.Bus, cfg config.Config, stderr io.Writer) int {
	err := tui.Run(ctx, m,
		tui.WithBus(b),
		tui.WithRefresh(time.Duration(cfg.Refresh)),
		tui.WithSplitCount(cfg.SplitCount),
		// Signals are the program's (signalContext): the first one ends ctx,
		// which ends the TUI; a second one exits at once.
		tui.WithProgramOptions(tea.WithoutSignalHandler()),
	)
	if err != nil {
		fmt.Fprintln(stderr, "shardtop: terminal UI:", err)
		return exitFailure
	}
	return exitOK
}

// errNoTerminal: the TUI was asked for where there is no terminal to draw on
// or read keys from (a service, a pipe, CI).
var errNoTerminal = errors.New("the terminal UI needs a terminal")

// checkTerminal reports why the TUI cannot run here, before anything is
// started: its output must be a terminal, and its keys come from stdin or,
// when stdin is redirected, /dev/tty (as Bubble Tea reads them). A variable
// for tests.
var checkTerminal = func() error {
	if !term.IsTerminal(os.Stdout.Fd()) {
		return fmt.Errorf("%w: standard output is not one", errNoTerminal)
	}
	if term.IsTerminal(os.Stdin.Fd()) {
		return nil
	}
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return fmt.Errorf("%w: standard input is not one and %w", errNoTerminal, err)
	}
	return tty.Close()
}
