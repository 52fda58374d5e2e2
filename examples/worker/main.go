// Command worker is a bot's worker on shardtop's event bus: a durable pull
// consumer on the stream that handles MESSAGE_CREATE events and
// acknowledges each one after handling it, and that sends a presence
// update back to the gateway through shard 0's command subject.
//
//	go run ./examples/worker --bus-url nats://127.0.0.1:4222
//
// It counts MESSAGE_CREATE events and prints a line per 1000. Being
// durable, the consumer keeps its place on the server: stopped and started
// again (SIGINT/SIGTERM), the worker goes on after the last event it
// acknowledged, and an event it got but did not acknowledge (it crashed) is
// delivered again. Run several with the same -consumer to share the events.
//
// The wire contract it relies on is in package bus (bus/doc.go).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// busTokenEnv holds the NATS token, as for `shardtop tail`.
const busTokenEnv = "SHARDTOP_BUS_TOKEN"

// commandTimeout bounds the wait for the answer to a command.
const commandTimeout = 5 * time.Second

// config is what the flags say.
type config struct {
	url, creds, token       string
	prefix, stream, durable string
	every                   int // print a line per every MESSAGE_CREATE
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Getenv(busTokenEnv))
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// parseFlags reads the flags; token is $SHARDTOP_BUS_TOKEN.
func parseFlags(args []string, token string) (config, error) {
	cfg := config{token: token}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.StringVar(&cfg.url, "bus-url", "nats://127.0.0.1:4222", "NATS `URL` of shardtop's bus")
	fs.StringVar(&cfg.creds, "creds", "", "NATS credentials `FILE`, if the server wants one (else $"+busTokenEnv+" is a token)")
	fs.StringVar(&cfg.prefix, "prefix", "shardtop", "subject `PREFIX` of the bus")
	fs.StringVar(&cfg.stream, "stream", "SHARDTOP", "JetStream stream `NAME`")
	fs.StringVar(&cfg.durable, "consumer", "worker", "durable consumer `NAME`: workers with the same name share the events")
	fs.IntVar(&cfg.every, "every", 1000, "print a line every `N` MESSAGE_CREATE")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.every < 1 {
		return cfg, fmt.Errorf("-every must be at least 1, got %d", cfg.every)
	}
	return cfg, nil
}

// run is the worker until ctx ends.
func run(ctx context.Context, cfg config, out io.Writer) error {
	opts := []nats.Option{nats.Name("shardtop example worker"), nats.MaxReconnects(-1)}
	if cfg.token != "" {
		opts = append(opts, nats.Token(cfg.token))
	}
	if cfg.creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.creds))
	}
	nc, err := nats.Connect(cfg.url, opts...)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", cfg.url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	// Durable: the server remembers what this consumer acknowledged. It
	// gets every MESSAGE_CREATE of every shard, and the markers of lost
	// events, which no worker should miss.
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.stream, jetstream.ConsumerConfig{
		Durable: cfg.durable,
		FilterSubjects: []string{
			cfg.prefix + ".ev.MESSAGE_CREATE.*",
			cfg.prefix + ".ev.SHARDTOP_LOST.*",
		},
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   30 * time.Second, // then an event not acknowledged is delivered again
	})
	if err != nil {
		return fmt.Errorf("consumer %s on stream %s: %w", cfg.durable, cfg.stream, err)
	}
	fmt.Fprintf(out, "consuming stream %s as %s\n", cfg.stream, cfg.durable)

	updatePresence(ctx, nc, cfg.prefix, out)

	it, err := cons.Messages()
	if err != nil {
		return err
	}
	// Drain, not Stop: the events already pulled are handled and
	// acknowledged before the loop ends, rather than delivered again.
	stopOnEnd := context.AfterFunc(ctx, it.Drain)
	defer stopOnEnd()
	w := &worker{out: out, every: cfg.every}
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			break
		}
		if err != nil {
			return err
		}
		w.handle(msg)
	}
	// Acknowledgements are sent without waiting: make sure they reached
	// the server before closing.
	if err := nc.FlushTimeout(commandTimeout); err != nil {
		return fmt.Errorf("flushing acknowledgements: %w", err)
	}
	fmt.Fprintf(out, "stopped: %d MESSAGE_CREATE\n", w.messages)
	return nil
}

// presence is a gateway presence update (op 3) as Discord defines it.
var presence = map[string]any{
	"op": 3,
	"d": map[string]any{
		"since":      nil,
		"activities": []map[string]any{{"name": "events from the bus", "type": 0}},
		"status":     "online",
		"afk":        false,
	},
}

// updatePresence sends the presence update to shard 0 by request-reply and
// prints the reply: {"ok":true}, or why not. A worker goes on without it.
func updatePresence(ctx context.Context, nc *nats.Conn, prefix string, out io.Writer) {
	body, _ := json.Marshal(presence) // a map of JSON values: cannot fail
	subject := prefix + ".cmd.0"
	reqCtx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	reply, err := nc.RequestWithContext(reqCtx, subject, body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		fmt.Fprintf(out, "presence update: no one answers on %s (is shardtop running with the bus on?)\n", subject)
	case err != nil:
		fmt.Fprintf(out, "presence update: %v\n", err)
	default:
		fmt.Fprintf(out, "presence update on shard 0: %s\n", reply.Data)
	}
}

// worker handles the events.
type worker struct {
	out      io.Writer
	every    int
	messages int
}

// message is the part of a MESSAGE_CREATE this worker reads.
type message struct {
	ChannelID string `json:"channel_id"`
	Content   string `json:"content"`
}

// handle handles one event and then acknowledges it.
func (w *worker) handle(msg jetstream.Msg) {
	h := msg.Headers()
	if h.Get("Shardtop-Event") == "SHARDTOP_LOST" {
		fmt.Fprintf(w.out, "lost %s events of shard %s (seq %s to %s): shardtop could not replay them\n",
			h.Get("Shardtop-Lost"), h.Get("Shardtop-Shard"), h.Get("Shardtop-Lost-From"), h.Get("Shardtop-Lost-To"))
		_ = msg.Ack()
		return
	}
	var m message
	if err := json.Unmarshal(msg.Data(), &m); err != nil {
		// Delivering it again would fail the same way: terminate it.
		fmt.Fprintf(w.out, "shard %s seq %s: not a message (%v); dropped\n", h.Get("Shardtop-Shard"), h.Get("Shardtop-Seq"), err)
		_ = msg.Term()
		return
	}
	w.messages++ // a real bot would act on m here
	if w.messages%w.every == 0 {
		fmt.Fprintf(w.out, "MESSAGE_CREATE: %d (last: shard %s, seq %s)\n", w.messages, h.Get("Shardtop-Shard"), h.Get("Shardtop-Seq"))
	}
	_ = msg.Ack()
}
