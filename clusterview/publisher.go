package clusterview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/shardtop/shardtop/manager"
)

// Source gives a Publisher its node's snapshot; *manager.Manager satisfies it.
type Source interface {
	SnapshotInto(dst *manager.Snapshot)
}

// Actions are the shard actions a node answers for others;
// *manager.Manager satisfies it.
type Actions interface {
	OpenShard(ctx context.Context, id int) error
	CloseShard(ctx context.Context, id int) error
	ResumeShard(ctx context.Context, id int) error
	RestartShard(ctx context.Context, id int) error
	SplitShard(ctx context.Context, id, k int) error
	Reshard(ctx context.Context, count int) error
}

var (
	_ Source  = (*manager.Manager)(nil)
	_ Actions = (*manager.Manager)(nil)
)

// A snapshot bigger than compressAbove bytes of JSON goes out compressed
// with S2, its header encodingHeader saying so. A 1000-shard snapshot is
// about 220 KB of JSON and 16 KB compressed (BenchmarkEncode1000,
// BenchmarkS2): far under the 1 MiB default MaxPayload of a NATS server.
const (
	compressAbove  = 32 << 10
	encodingHeader = "Shardtop-Encoding"
	encodingS2     = "s2"
	// maxDecoded bounds what a view decompresses from one message.
	maxDecoded = 64 << 20
)

func snapshotSubject(prefix, node string) string { return prefix + ".cluster.snapshot." + node }
func actionSubject(prefix, node string) string   { return prefix + ".cluster.action." + node }

// Publisher publishes a node's snapshot every interval and answers the
// actions other nodes send it. One goroutine owns the snapshot and the
// encode buffers; the action handler runs on the NATS subscription's own
// goroutine (so one node's actions run one at a time) and shares nothing
// with it but src.
type Publisher struct {
	nc      *nats.Conn
	node    string
	src     Source
	act     Actions // nil for a watch-only node
	s       settings
	log     *slog.Logger
	sub     *nats.Subscription
	stop    chan struct{}
	done    chan struct{}
	closeMu sync.Once
}

// Publish starts publishing node's snapshot from src on
// "<prefix>.cluster.snapshot.<node>" every interval, and answering
// "<prefix>.cluster.action.<node>" with src's Actions (if src has them).
// src nil is a watch-only node: it publishes an empty snapshot with
// WatchOnly set, so other views list it. Close stops it.
func Publish(nc *nats.Conn, node string, src Source, opts ...Option) (*Publisher, error) {
	s, err := newSettings(opts)
	if err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, optionError("Publish: nil NATS connection")
	}
	if err := checkNode("Publish", node); err != nil {
		return nil, err
	}
	p := &Publisher{nc: nc, node: node, src: src, s: s, stop: make(chan struct{}), done: make(chan struct{}),
		log: s.log.With("component", "clusterview", "node", node)}
	if a, ok := src.(Actions); ok {
		p.act = a
	}
	p.sub, err = nc.Subscribe(actionSubject(s.prefix, node), p.handleAction)
	if err != nil {
		return nil, fmt.Errorf("clusterview: subscribe %s: %w", actionSubject(s.prefix, node), err)
	}
	go p.run()
	return p, nil
}

// Close stops publishing and answering; it waits for the publishing
// goroutine. It does not close nc.
func (p *Publisher) Close() error {
	var err error
	p.closeMu.Do(func() {
		close(p.stop)
		<-p.done
		err = p.sub.Unsubscribe()
	})
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("clusterview: unsubscribe: %w", err)
	}
	return nil
}

func (p *Publisher) run() {
	defer close(p.done)
	subj := snapshotSubject(p.s.prefix, p.node)
	var snap manager.Snapshot
	var w wireSnapshot
	var buf, zbuf []byte
	msg := &nats.Msg{Subject: subj, Header: nats.Header{}}
	t := time.NewTicker(p.s.interval)
	defer t.Stop()
	for {
		buf = p.encode(&snap, &w, buf[:0])
		zbuf = frame(msg, buf, zbuf)
		if err := p.nc.PublishMsg(msg); err != nil {
			p.log.Warn("publish snapshot", "subject", subj, "bytes", len(msg.Data), "err", err)
		}
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

// frame puts the JSON buf into msg, compressed into zbuf if it is big;
// it returns zbuf for reuse.
func frame(msg *nats.Msg, buf, zbuf []byte) []byte {
	msg.Data = buf
	msg.Header.Del(encodingHeader)
	if len(buf) > compressAbove {
		zbuf = s2.Encode(zbuf[:cap(zbuf)], buf)
		msg.Data = zbuf
		msg.Header.Set(encodingHeader, encodingS2)
	}
	return zbuf
}

// encode fills w from src (reusing snap's and w's storage) and appends its
// JSON to buf.
func (p *Publisher) encode(snap *manager.Snapshot, w *wireSnapshot, buf []byte) []byte {
	w.Node, w.WatchOnly, w.Leases = p.node, p.src == nil, 0
	w.Shards = w.Shards[:0]
	w.Ident, w.Resumes, w.Dropped = 0, 0, 0
	if p.src != nil {
		p.src.SnapshotInto(snap)
		for i := range snap.Shards {
			w.Shards = append(w.Shards, toWire(&snap.Shards[i]))
		}
		w.Ident, w.Resumes, w.Dropped = snap.Totals.Identifies, snap.Totals.Resumes, snap.Totals.DroppedEvents
	}
	if p.s.leases != nil {
		w.Leases = p.s.leases()
	}
	w.At = time.Now().UnixMilli()
	out, err := json.Marshal(w)
	if err != nil { // cannot happen for these types
		p.log.Error("encode snapshot", "err", err)
		return buf
	}
	return append(buf, out...)
}

func (p *Publisher) handleAction(msg *nats.Msg) {
	rep := p.act1(msg.Data)
	data, _ := json.Marshal(rep)
	if msg.Reply == "" {
		return
	}
	if err := msg.Respond(data); err != nil {
		p.log.Warn("answer action", "subject", msg.Subject, "err", err)
	}
}

// act1 decodes, validates and runs one action request.
func (p *Publisher) act1(data []byte) actionReply {
	var req actionRequest
	fail := func(err error) actionReply {
		r := actionReply{Error: err.Error()}
		for code, s := range sentinels {
			if errors.Is(err, s) {
				r.Code = code
				break
			}
		}
		return r
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrBadRequest, err))
	}
	if req.Op != opReshard {
		switch {
		case req.ID == nil:
			return fail(fmt.Errorf("%w: op %q: missing shard id", ErrBadRequest, req.Op))
		case *req.ID < 0:
			return fail(fmt.Errorf("%w: op %q: negative shard id %d", ErrBadRequest, req.Op, *req.ID))
		}
	}
	switch req.Op {
	case opOpen, opClose, opResume, opRestart, opReshard:
	case opSplit:
		if req.K < 2 {
			return fail(fmt.Errorf("%w: split shard %d: factor %d (want >= 2)", ErrBadRequest, *req.ID, req.K))
		}
	default:
		return fail(fmt.Errorf("%w: unknown op %q", ErrBadRequest, req.Op))
	}
	if req.Op == opReshard && req.Count < 0 {
		return fail(fmt.Errorf("%w: reshard: negative count %d", ErrBadRequest, req.Count))
	}
	if p.act == nil {
		return fail(fmt.Errorf("%w: %s", ErrWatchOnly, p.node))
	}
	d := p.s.actionTimeout
	if req.TimeoutMS > 0 {
		d = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	p.log.Info("remote action", "op", req.Op, "shard", derefOr(req.ID, -1), "k", req.K, "count", req.Count)
	var err error
	switch req.Op {
	case opOpen:
		err = p.act.OpenShard(ctx, *req.ID)
	case opClose:
		err = p.act.CloseShard(ctx, *req.ID)
	case opResume:
		err = p.act.ResumeShard(ctx, *req.ID)
	case opRestart:
		err = p.act.RestartShard(ctx, *req.ID)
	case opSplit:
		err = p.act.SplitShard(ctx, *req.ID, req.K)
	case opReshard:
		err = p.act.Reshard(ctx, req.Count)
	}
	if err != nil {
		return fail(err)
	}
	return actionReply{}
}

func derefOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}
