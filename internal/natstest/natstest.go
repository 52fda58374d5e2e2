// Package natstest runs a real NATS server with JetStream inside the test
// process, and publishes events to it the way the bus contract (package bus,
// doc.go) says shardtop does: subject, headers, message ID and body. The
// tests of `shardtop tail` and of the worker examples read what it
// publishes, as they would read shardtop's.
//
// It is the contract as the tests see it, written from bus/doc.go and not
// from the publisher: a drift between the two shows as a failing test.
//
// It is test support: import it from _test.go files only.
package natstest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// The contract's defaults (bus/doc.go).
const (
	Prefix = "shardtop"
	Stream = "SHARDTOP"
	// LostEvent is the event name of the lost-events marker.
	LostEvent = "SHARDTOP_LOST"
)

// readyTimeout bounds the server's start on a loaded machine.
const readyTimeout = 10 * time.Second

// Start runs a NATS server with JetStream on a free loopback port, storing
// in a temporary directory, until the end of the test. configure, if
// given, changes the options before the server starts (credentials, say).
func Start(tb testing.TB, configure ...func(*server.Options)) *server.Server {
	tb.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  tb.TempDir(),
		NoLog:     true,
		NoSigs:    true, // the test process's signals are the tests'
	}
	for _, c := range configure {
		c(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		tb.Fatalf("nats server: %v", err)
	}
	s.Start()
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(readyTimeout) {
		tb.Fatalf("nats server not ready for connections after %v", readyTimeout)
	}
	return s
}

// StartWithCredentials is Start for a server that accepts only users with
// a credentials file (a user JWT and its nkey seed, as NATS operators hand
// out), in operator mode with one account that may use JetStream. It
// returns the server and the path of a credentials file it accepts.
func StartWithCredentials(tb testing.TB) (s *server.Server, credsFile string) {
	tb.Helper()
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatalf("credentials: %v", err)
		}
	}
	operator, err := nkeys.CreateOperator()
	must(err)
	operatorPub, err := operator.PublicKey()
	must(err)
	operatorClaims := jwt.NewOperatorClaims(operatorPub)

	resolver := &server.MemAccResolver{}
	account := func(jetStream bool) (nkeys.KeyPair, string) {
		tb.Helper()
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		claims := jwt.NewAccountClaims(pub)
		if jetStream {
			claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		token, err := claims.Encode(operator)
		must(err)
		must(resolver.Store(pub, token))
		return kp, pub
	}
	_, systemPub := account(false)
	operatorClaims.SystemAccount = systemPub
	app, _ := account(true)

	user, err := nkeys.CreateUser()
	must(err)
	userPub, err := user.PublicKey()
	must(err)
	userJWT, err := jwt.NewUserClaims(userPub).Encode(app)
	must(err)
	seed, err := user.Seed()
	must(err)
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	must(err)
	credsFile = filepath.Join(tb.TempDir(), "user.creds")
	must(os.WriteFile(credsFile, creds, 0o600))

	s = Start(tb, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{operatorClaims}
		o.AccountResolver = resolver
		o.SystemAccount = systemPub
	})
	return s, credsFile
}

// Connect connects to url, until the end of the test.
func Connect(tb testing.TB, url string, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		tb.Fatalf("connect to %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// JetStream connects to url and returns its JetStream context.
func JetStream(tb testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(Connect(tb, url, opts...))
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return js
}

// CreateStream creates the contract's stream: name, subjects PREFIX.ev.>,
// and a duplicate window, so that Nats-Msg-Id de-duplicates.
func CreateStream(tb testing.TB, js jetstream.JetStream, name, prefix string) jetstream.Stream {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{prefix + ".ev.>"},
		Duplicates: 10 * time.Minute,
		Storage:    jetstream.FileStorage,
	})
	if err != nil {
		tb.Fatalf("create stream %s: %v", name, err)
	}
	return st
}

// Event is one message on the stream as shardtop publishes it: a dispatch,
// or with Lost set a lost-events marker.
type Event struct {
	Prefix     string // "" for Prefix
	Name       string // Discord's t, or LostEvent
	ShardID    int
	ShardCount int
	Seq        uint64
	Session    string
	Guild      string // "" when the event has none
	Received   time.Time
	Body       []byte // Discord's d
	// Lost is the marker's range, for a LostEvent.
	Lost *LostRange
}

// LostRange is the range of sequences a marker announces as lost.
type LostRange struct{ From, To uint64 }

// Subject is PREFIX.ev.EVENT_NAME.SHARD_ID.
func (e Event) Subject() string {
	prefix := e.Prefix
	if prefix == "" {
		prefix = Prefix
	}
	return fmt.Sprintf("%s.ev.%s.%d", prefix, e.Name, e.ShardID)
}

// Msg is the event's NATS message with the contract's headers.
func (e Event) Msg() *nats.Msg {
	m := nats.NewMsg(e.Subject())
	m.Data = e.Body
	m.Header.Set("Shardtop-Shard", fmt.Sprintf("%d/%d", e.ShardID, e.ShardCount))
	m.Header.Set("Shardtop-Seq", strconv.FormatUint(e.Seq, 10))
	m.Header.Set("Shardtop-Session", e.Session)
	m.Header.Set("Shardtop-Event", e.Name)
	if e.Guild != "" {
		m.Header.Set("Shardtop-Guild", e.Guild)
	}
	m.Header.Set("Shardtop-Received", e.Received.UTC().Format(time.RFC3339Nano))
	m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s:%d", e.Session, e.Seq))
	if e.Lost != nil {
		m.Header.Set("Shardtop-Lost-From", strconv.FormatUint(e.Lost.From, 10))
		m.Header.Set("Shardtop-Lost-To", strconv.FormatUint(e.Lost.To, 10))
		m.Header.Set("Shardtop-Lost", strconv.FormatUint(e.Lost.To-e.Lost.From+1, 10))
	}
	return m
}

// Publish publishes e and waits for the stream's acknowledgement.
func Publish(tb testing.TB, js jetstream.JetStream, e Event) *jetstream.PubAck {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	ack, err := js.PublishMsg(ctx, e.Msg())
	if err != nil {
		tb.Fatalf("publish %s: %v", e.Subject(), err)
	}
	return ack
}

// MessageCreate is a MESSAGE_CREATE of shard id of count, sequence seq in
// session, in guild, with a small realistic body.
func MessageCreate(id, count int, session string, seq uint64, guild string) Event {
	body := fmt.Sprintf(`{"id":"%d","channel_id":"1","guild_id":"%s","content":"message %d","author":{"id":"2","username":"u"}}`,
		1000+seq, guild, seq)
	return Event{
		Name: "MESSAGE_CREATE", ShardID: id, ShardCount: count, Seq: seq, Session: session,
		Guild: guild, Received: time.Now(), Body: []byte(body),
	}
}
