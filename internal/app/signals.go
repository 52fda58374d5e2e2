package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exitNow ends the process; a variable so that tests of the signal logic
// run in-process.
var exitNow = os.Exit

// signalContext returns a context that is cancelled by the first SIGINT or
// SIGTERM, starting a graceful shutdown. A second signal exits the process at
// once with exitFailure: sessions not yet saved are lost (those saved earlier
// still resume). stop releases the signal handler.
func signalContext(stderr io.Writer) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		select {
		case <-ch:
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-ch:
			fmt.Fprintf(stderr, "shardtop: second signal (%v): exiting at once without saving sessions\n", sig)
			exitNow(exitFailure)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		<-ended
		cancel()
	}
}
