package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/internal/regularfile"
)

// The bus contract's names (package bus, doc.go) that tail relies on.
const (
	defaultBusURL    = "nats://127.0.0.1:4222"
	defaultBusPrefix = "shardtop"
	defaultBusStream = "SHARDTOP"
	// busTokenEnv holds the NATS token: unlike a flag, it does not show in
	// the process list.
	busTokenEnv = "SHARDTOP_BUS_TOKEN"
	// lostEvent is the event name of the markers that announce lost events.
	lostEvent = "SHARDTOP_LOST"
)

// tailConnectTimeout bounds the first connection and the stream look-up:
// tail is run by hand, and a wrong URL should say so at once.
const tailConnectTimeout = 5 * time.Second

// tailOptions are the flags of `shardtop tail`.
type tailOptions struct {
	event     string // "" for every event
	shard     string // "" for every shard, else a shard ID in decimal
	guild     string // "" for every guild, else a guild ID in decimal
	url       string
	prefix    string
	stream    string
	creds     string
	fromStart bool
}

// runTail is `shardtop tail`: the bus's events as JSON lines on stdout,
// until SIGINT or SIGTERM.
func runTail(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	ctx, stop := signalContext(stderr)
	defer stop()
	return tail(ctx, args, stdout, stderr, getenv)
}

// tail is runTail until ctx ends, which is a normal stop (exitOK).
func tail(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	o, err := parseTailOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "shardtop tail:", err)
		return exitUsage
	}
	// connCtx also ends when NATS gives the connection up.
	connCtx, connClosed := context.WithCancel(ctx)
	defer connClosed()
	t := &tailer{o: o, stdout: stdout, stderr: stderr, url: redactURL(o.url), connClosed: connClosed}
	if err := t.connect(getenv); err != nil {
		fmt.Fprintf(stderr, "shardtop tail: cannot connect to %s: %v\n", t.url, err)
		return exitFailure
	}
	defer t.nc.Close()
	status := t.run(connCtx)
	if status == exitOK && ctx.Err() == nil {
		// Not a signal: NATS gave up (it reconnects otherwise), and the
		// events can no longer come.
		fmt.Fprintf(stderr, "shardtop tail: the connection to %s was closed\n", t.url)
		return exitFailure
	}
	return status
}

// parseTailOptions parses the flags of `shardtop tail`. Errors are usage
// errors (exit 2) and name the flag.
func parseTailOptions(args []string, stderr io.Writer) (tailOptions, error) {
	var o tailOptions
	fs := flag.NewFlagSet("shardtop tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.event, "event", "", "only events named `NAME`, e.g. MESSAGE_CREATE (default: every event)")
	fs.StringVar(&o.shard, "shard", "", "only shard `N` (default: every shard)")
	fs.StringVar(&o.guild, "guild", "", "only events of guild `ID`, by their Shardtop-Guild header (default: every event)")
	fs.StringVar(&o.url, "bus-url", defaultBusURL, "NATS `URL`s, comma-separated; the header of shardtop --demo shows its own")
	fs.StringVar(&o.prefix, "prefix", defaultBusPrefix, "subject `PREFIX` (the [bus] prefix key)")
	fs.StringVar(&o.stream, "stream", defaultBusStream, "JetStream stream `NAME`")
	fs.StringVar(&o.creds, "creds", "", "NATS credentials `FILE` (user JWT and seed), for a server that wants one")
	fs.BoolVar(&o.fromStart, "from-start", false, "print every event the stream holds first, then the new ones (default: new ones only)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shardtop tail [flags]\n\n"+
			"Prints the events on shardtop's bus (NATS JetStream) as JSON lines, one per event, until SIGINT or SIGTERM:\n"+
			"  {\"subject\",\"shard\":[id,count],\"seq\",\"session\",\"event\",\"guild\",\"received\",\"stream_seq\",\"d\"}\n"+
			"d is Discord's payload as JSON. Markers of lost events (%s) have \"lost\":{\"from\",\"to\",\"count\"} too,\n"+
			"and show whatever -event and -guild say: a loss concerns every event of its shard.\n"+
			"Credentials: $%s (a NATS token), -creds FILE, or user:password@ in the URL.\n\nFlags:\n", lostEvent, busTokenEnv)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.event != "" {
		if err := checkSubjectToken(o.event); err != nil {
			return o, fmt.Errorf("-event %q: %w", o.event, err)
		}
	}
	if o.shard != "" {
		if n, err := strconv.Atoi(o.shard); err != nil || n < 0 || strconv.Itoa(n) != o.shard {
			return o, fmt.Errorf("-shard must be a shard ID (0 or more), got %q", o.shard)
		}
	}
	if o.guild != "" {
		if g, err := strconv.ParseUint(o.guild, 10, 64); err != nil || strconv.FormatUint(g, 10) != o.guild {
			return o, fmt.Errorf("-guild must be a guild ID (a snowflake, digits), got %q", o.guild)
		}
	}
	if strings.TrimSpace(o.url) == "" {
		return o, errors.New("-bus-url must not be empty")
	}
	for token := range strings.SplitSeq(o.prefix, ".") {
		if err := checkSubjectToken(token); err != nil {
			return o, fmt.Errorf("-prefix %q: %w", o.prefix, err)
		}
	}
	if o.creds != "" {
		// Checked here for a clear usage error; NATS reads it when it connects.
		fi, err := os.Stat(o.creds)
		if err == nil {
			err = regularfile.Check(o.creds, fi)
		}
		if err != nil {
			return o, fmt.Errorf("-creds %s: %w", o.creds, err)
		}
	}
	if o.stream == "" || strings.ContainsAny(o.stream, ".*> /\\\t\r\n") {
		return o, fmt.Errorf("-stream %q: a stream name is not empty and has no '.', '*', '>', '/', '\\' or spaces", o.stream)
	}
	return o, nil
}

// errBadSubjectToken says why a flag cannot be one token of a subject.
var errBadSubjectToken = errors.New("must be one subject token: not empty, no '.', '*', '>' or spaces")

// checkSubjectToken checks that s can stand between two dots of a NATS
// subject and matches only itself.
func checkSubjectToken(s string) error {
	if s == "" || strings.ContainsAny(s, ".*> \t\r\n") {
		return errBadSubjectToken
	}
	return nil
}

// redactURL is the comma-separated NATS URL list u with any user, password
// or token in it replaced by "***", for messages: a token is the user part
// of nats://TOKEN@host, which url.URL.Redacted would show.
func redactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if at := strings.LastIndex(p, "@"); at >= 0 {
			start := 0
			if k := strings.Index(p, "://"); k >= 0 && k < at {
				start = k + len("://")
			}
			p = p[:start] + "***" + p[at:]
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// tailer is one run of `shardtop tail`.
type tailer struct {
	o              tailOptions
	stdout, stderr io.Writer
	url            string // o.url without credentials, for messages

	nc *nats.Conn
	// connClosed ends run once the connection is closed for good.
	connClosed context.CancelFunc
}

// connect connects to the bus. It keeps reconnecting for as long as it
// runs, saying so: a restart of shardtop or of the NATS server is not the
// end of a tail.
func (t *tailer) connect(getenv func(string) string) error {
	opts := []nats.Option{
		nats.Name("shardtop tail"),
		nats.Timeout(tailConnectTimeout),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				fmt.Fprintf(t.stderr, "shardtop tail: disconnected from %s (%v); reconnecting\n", t.url, err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			fmt.Fprintf(t.stderr, "shardtop tail: reconnected to %s\n", t.url)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			fmt.Fprintf(t.stderr, "shardtop tail: %s: %v\n", t.url, err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { t.connClosed() }),
	}
	if token := getenv(busTokenEnv); token != "" {
		opts = append(opts, nats.Token(token))
	}
	if t.o.creds != "" {
		opts = append(opts, nats.UserCredentials(t.o.creds))
	}
	nc, err := nats.Connect(t.o.url, opts...)
	if err != nil {
		if t.o.creds != "" {
			return fmt.Errorf("with credentials %s: %w", t.o.creds, err)
		}
		return err
	}
	t.nc = nc
	return nil
}

// run prints the events until ctx ends: a signal, or the connection
// closed for good.
func (t *tailer) run(ctx context.Context) int {
	it, err := t.subscribe(ctx)
	if err != nil {
		fmt.Fprintln(t.stderr, "shardtop tail:", err)
		return exitFailure
	}
	stopOnEnd := context.AfterFunc(ctx, it.Stop)
	defer stopOnEnd()

	enc := json.NewEncoder(t.stdout)
	enc.SetEscapeHTML(false) // message contents stay readable: <, > and & as they are
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			break
		}
		if err != nil {
			fmt.Fprintf(t.stderr, "shardtop tail: reading stream %s at %s: %v\n", t.o.stream, t.url, err)
			return exitFailure
		}
		ev := t.decode(msg)
		if !t.wanted(ev) {
			continue
		}
		if err := enc.Encode(ev); err != nil {
			fmt.Fprintln(t.stderr, "shardtop tail: writing:", err)
			return exitFailure
		}
	}
	return exitOK
}

// subscribe creates the ephemeral ordered consumer of the selected
// subjects and says what it watches on stderr.
func (t *tailer) subscribe(ctx context.Context) (jetstream.MessagesContext, error) {
	js, err := jetstream.New(t.nc)
	if err != nil {
		return nil, err
	}
	lookup, cancel := context.WithTimeout(ctx, tailConnectTimeout)
	defer cancel()
	stream, err := js.Stream(lookup, t.o.stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("no stream %s at %s: is shardtop running there with the bus on? (-stream names another)", t.o.stream, t.url)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return nil, fmt.Errorf("JetStream is not enabled at %s", t.url)
	case err != nil:
		return nil, fmt.Errorf("stream %s at %s: %w", t.o.stream, t.url, err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: t.subjects(), DeliverPolicy: jetstream.DeliverAllPolicy}
	if !t.o.fromStart {
		// "New" as a start sequence rather than DeliverNewPolicy: the
		// ordered consumer re-creates itself after a reconnect, and until
		// it has delivered a message it would start at "new" again,
		// skipping what was published in between.
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = stream.CachedInfo().State.LastSeq + 1
	}
	cons, err := js.OrderedConsumer(lookup, t.o.stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("consumer on stream %s at %s: %w", t.o.stream, t.url, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("consumer on stream %s at %s: %w", t.o.stream, t.url, err)
	}
	which := "new events"
	if t.o.fromStart {
		which = "the stream's events from the start, then new ones"
	}
	if t.o.guild != "" {
		which += "; guild " + t.o.guild + " only"
	}
	fmt.Fprintf(t.stderr, "shardtop tail: watching %s on stream %s at %s (%s)\n",
		strings.Join(cfg.FilterSubjects, " "), t.o.stream, t.url, which)
	return it, nil
}

// subjects are the consumer's filter: PREFIX.ev.NAME.SHARD as the flags
// select, and the lost-event markers of the same shards, which concern
// every event name.
func (t *tailer) subjects() []string {
	name, shard := t.o.event, t.o.shard
	if name == "" && shard == "" {
		return []string{t.o.prefix + ".ev.>"}
	}
	if shard == "" {
		shard = "*"
	}
	if name == "" {
		return []string{t.o.prefix + ".ev.*." + shard}
	}
	subjects := []string{t.o.prefix + ".ev." + name + "." + shard}
	if name != lostEvent {
		subjects = append(subjects, t.o.prefix+".ev."+lostEvent+"."+shard)
	}
	return subjects
}

// tailEvent is one line of `shardtop tail`. A header that is missing or
// malformed is null (a malformed one is also reported on stderr).
type tailEvent struct {
	Subject   string          `json:"subject"`
	Shard     []int           `json:"shard"` // [id, count]
	Seq       *uint64         `json:"seq"`
	Session   *string         `json:"session"`
	Event     *string         `json:"event"`
	Guild     *string         `json:"guild"`
	Received  *string         `json:"received"`
	StreamSeq uint64          `json:"stream_seq"`
	D         json.RawMessage `json:"d"`
	Lost      *tailLost       `json:"lost,omitempty"`
}

// tailLost is a marker's range of lost sequences.
type tailLost struct {
	From  *uint64 `json:"from"`
	To    *uint64 `json:"to"`
	Count *uint64 `json:"count"`
}

// decode turns a message of the stream into its line.
func (t *tailer) decode(msg jetstream.Msg) tailEvent {
	ev := tailEvent{Subject: msg.Subject()}
	if md, err := msg.Metadata(); err == nil {
		ev.StreamSeq = md.Sequence.Stream
	}
	h := msg.Headers()
	header := func(key string) *string {
		if v := h.Values(key); len(v) > 0 {
			return &v[0]
		}
		return nil
	}
	number := func(key string) *uint64 {
		v := header(key)
		if v == nil {
			return nil
		}
		n, err := strconv.ParseUint(*v, 10, 64)
		if err != nil {
			t.malformed(ev, key, *v, "a number")
			return nil
		}
		return &n
	}
	if v := header("Shardtop-Shard"); v != nil {
		if id, count, ok := parseShardHeader(*v); ok {
			ev.Shard = []int{id, count}
		} else {
			t.malformed(ev, "Shardtop-Shard", *v, "ID/COUNT")
		}
	}
	ev.Seq = number("Shardtop-Seq")
	ev.Session = header("Shardtop-Session")
	ev.Event = header("Shardtop-Event")
	ev.Guild = header("Shardtop-Guild")
	ev.Received = header("Shardtop-Received")
	if t.isMarker(ev.Subject) {
		ev.Lost = &tailLost{From: number("Shardtop-Lost-From"), To: number("Shardtop-Lost-To"), Count: number("Shardtop-Lost")}
	}
	switch body := msg.Data(); {
	case len(body) == 0:
		ev.D = json.RawMessage("null")
	case json.Valid(body):
		ev.D = body
	default:
		// Not what the contract says (Discord's d is JSON): shown as a
		// string rather than lost.
		t.malformed(ev, "body", string(body[:min(len(body), 40)]), "JSON")
		ev.D, _ = json.Marshal(string(body))
	}
	return ev
}

// malformed reports a header (or body) of ev that is not what the contract
// says, on stderr.
func (t *tailer) malformed(ev tailEvent, what, value, want string) {
	fmt.Fprintf(t.stderr, "shardtop tail: stream seq %d (%s): %s %q is not %s\n", ev.StreamSeq, ev.Subject, what, value, want)
}

// isMarker reports whether subject is PREFIX.ev.SHARDTOP_LOST.SHARD.
func (t *tailer) isMarker(subject string) bool {
	return strings.HasPrefix(subject, t.o.prefix+".ev."+lostEvent+".")
}

// wanted applies the -guild filter, which the subjects cannot carry. A
// marker is kept when its shard serves the guild (or its shard is not
// known): the lost events may be that guild's.
func (t *tailer) wanted(ev tailEvent) bool {
	if t.o.guild == "" {
		return true
	}
	if ev.Lost != nil {
		if len(ev.Shard) != 2 {
			return true
		}
		guild, _ := strconv.ParseUint(t.o.guild, 10, 64) // checked by parseTailOptions
		return int((guild>>22)%uint64(ev.Shard[1])) == ev.Shard[0]
	}
	return ev.Guild != nil && *ev.Guild == t.o.guild
}

// parseShardHeader parses Shardtop-Shard, "ID/COUNT".
func parseShardHeader(v string) (id, count int, ok bool) {
	a, b, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, false
	}
	id, err1 := strconv.Atoi(a)
	count, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || id < 0 || count < 1 || id >= count {
		return 0, 0, false
	}
	return id, count, true
}
