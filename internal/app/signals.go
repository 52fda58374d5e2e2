package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// exitNow ends the process and signalClock tells the time; variables so
// that tests of the signal logic run in-process, on their own clock.
var (
	exitNow     = os.Exit
	signalClock = time.Now
)

// sameStop is how soon after the first signal another one is still the same
// stop: a supervisor that signals the process and then its group (GNU
// timeout does) sends two at once, and the second must not throw away the
// graceful save the first began.
const sameStop = 500 * time.Millisecond

// signalContext returns a context that is cancelled by the first SIGINT or
// SIGTERM, starting a graceful shutdown. A second signal exits the process at
// once with exitFailure: sessions not yet saved are lost (those saved earlier
// still resume). A signal within sameStop of the first is the same stop.
// stop releases the signal handler.
func signalContext(stderr io.Writer) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		var first time.Time
		select {
		case <-ch:
			first = signalClock()
			cancel()
		case <-done:
			return
		}
		for {
			select {
			case sig := <-ch:
				if signalClock().Sub(first) < sameStop {
					fmt.Fprintf(stderr, "shardtop: %v again within %v of the first signal: the same stop, still saving sessions\n", sig, sameStop)
					continue
				}
				fmt.Fprintf(stderr, "shardtop: second signal (%v): exiting at once without saving sessions\n", sig)
				exitNow(exitFailure)
				return
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		<-ended
		cancel()
	}
}
