package tui

import (
	"context"
	"errors"

	tea "github.com/charmbracelet/bubbletea"
)

// Run shows the UI over mgr until the user quits (nil) or ctx ends (nil:
// the caller ended it). It runs in the terminal's alternate screen. Quitting
// does not close the shards: give WithQuitHandler to start the program's
// shutdown path.
func Run(ctx context.Context, mgr Manager, opts ...Option) error {
	opts = append([]Option{WithContext(ctx)}, opts...)
	m, err := New(mgr, opts...)
	if err != nil {
		return err
	}
	defer m.Close()
	popts := append([]tea.ProgramOption{tea.WithAltScreen(), tea.WithContext(ctx)}, m.cfg.programOpts...)
	_, err = tea.NewProgram(m, popts...).Run()
	if err != nil && errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}
