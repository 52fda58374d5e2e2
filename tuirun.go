package main

import (
	"context"
	"fmt"
	"io"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/shardtop/shardtop/manager"
	"github.com/shardtop/shardtop/tui"
)

// runInteractive shows the TUI until the user quits (q) or ctx ends (a
// signal); the caller then closes every shard resumable.
func runInteractive(ctx context.Context, m *manager.Manager, cfg Config, stderr io.Writer) int {
	err := tui.Run(ctx, m,
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
