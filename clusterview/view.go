package clusterview

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// Local is this process's own manager, as a View needs it;
// *manager.Manager satisfies it.
type Local interface {
	Source
	Actions
	ShardDetailInto(key manager.ShardKey, dst *manager.ShardDetail) bool
	Subscribe(buffer int) (<-chan manager.Event, func())
}

var _ Local = (*manager.Manager)(nil)

// remote is the latest snapshot of one other node.
type remote struct {
	snap     wireSnapshot
	lastSeen time.Time
}

// View merges this process's snapshot with the latest of every other node
// of the bot, and sends actions on remote shards to their owner; it
// satisfies tui.Manager.
//
// The NATS subscription handler decodes each snapshot outside any lock,
// then swaps it into its node's slot under mu; SnapshotInto copies out of
// the slots under mu. mu is never held across I/O or across a call to
// Local.
type View struct {
	nc    *nats.Conn
	self  string
	local Local
	s     settings
	log   *slog.Logger
	sub   *nats.Subscription

	mu    sync.Mutex
	nodes map[string]*remote

	actMu   sync.Mutex // guards actSnap: the scratch snapshot of an action
	actSnap manager.Snapshot
	never   chan manager.Event
}

// NewView subscribes to every node's snapshot under the prefix. self is
// this process's node name; local its manager, nil for a watch-only view.
// Close ends the subscription.
func NewView(nc *nats.Conn, self string, local Local, opts ...Option) (*View, error) {
	s, err := newSettings(opts)
	if err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, optionError("NewView: nil NATS connection")
	}
	if err := checkNode("NewView", self); err != nil {
		return nil, err
	}
	v := &View{nc: nc, self: self, local: local, s: s, nodes: map[string]*remote{}, never: make(chan manager.Event),
		log: s.log.With("component", "clusterview", "node", self)}
	subj := snapshotSubject(s.prefix, "*")
	v.sub, err = nc.Subscribe(subj, v.handleSnapshot)
	if err != nil {
		return nil, fmt.Errorf("clusterview: subscribe %s: %w", subj, err)
	}
	return v, nil
}

// Close ends the view's subscription; it does not close nc or local.
func (v *View) Close() error {
	if err := v.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("clusterview: unsubscribe: %w", err)
	}
	return nil
}

func (v *View) handleSnapshot(msg *nats.Msg) {
	node := strings.TrimPrefix(msg.Subject, v.s.prefix+".cluster.snapshot.")
	if node == v.self {
		return // this process's own state is taken fresh
	}
	data := msg.Data
	switch enc := msg.Header.Get(encodingHeader); enc {
	case "":
	case encodingS2:
		n, err := s2.DecodedLen(data)
		if err == nil && n > maxDecoded {
			err = fmt.Errorf("decodes to %d bytes, more than %d", n, maxDecoded)
		}
		if err == nil {
			data, err = s2.Decode(nil, data)
		}
		if err != nil {
			v.log.Warn("ignoring malformed snapshot", "subject", msg.Subject, "bytes", len(msg.Data), "err", err)
			return
		}
	default:
		v.log.Warn("ignoring snapshot in an unknown encoding", "subject", msg.Subject, "encoding", enc)
		return
	}
	var w wireSnapshot
	if err := json.Unmarshal(data, &w); err != nil {
		v.log.Warn("ignoring malformed snapshot", "subject", msg.Subject, "bytes", len(msg.Data), "err", err)
		return
	}
	if w.Node != node {
		v.log.Warn("ignoring snapshot naming another node", "subject", msg.Subject, "named", w.Node)
		return
	}
	for i := range w.Shards {
		if sh := &w.Shards[i]; sh.ID < 0 || sh.Count <= 0 || sh.ID >= sh.Count {
			v.log.Warn("ignoring snapshot with a bad shard key", "subject", msg.Subject, "shard", sh.ID, "count", sh.Count)
			return
		}
	}
	now := time.Now()
	v.mu.Lock()
	r := v.nodes[node]
	if r == nil {
		r = &remote{}
		v.nodes[node] = r
	}
	r.snap, r.lastSeen = w, now
	v.mu.Unlock()
}

// SnapshotInto fills dst with every node's shards, reusing dst.Shards'
// and dst.Nodes' storage: the local shards as of now, the others as their
// node last published them. A gone node is listed in Nodes but its shards
// are left out. If two nodes report the same shard key, the Ready one (or
// else the most recent) is kept.
func (v *View) SnapshotInto(dst *manager.Snapshot) {
	now := time.Now()
	nodes := dst.Nodes[:0]
	var ident, resumes, dropped uint64
	if v.local != nil {
		v.local.SnapshotInto(dst)
		ident, resumes, dropped = dst.Totals.Identifies, dst.Totals.Resumes, dst.Totals.DroppedEvents
		self := manager.NodeInfo{Name: v.self, LastSeen: now, Self: true}
		for i := range dst.Shards {
			dst.Shards[i].Node = v.self
			countNode(&self, &dst.Shards[i])
		}
		nodes = append(nodes, self)
	} else {
		*dst = manager.Snapshot{Shards: dst.Shards[:0], At: now, CanReshard: true}
		nodes = append(nodes, manager.NodeInfo{Name: v.self, LastSeen: now, Self: true, WatchOnly: true})
	}
	nLocal := len(dst.Shards)
	v.mu.Lock()
	for name, r := range v.nodes {
		ni := manager.NodeInfo{Name: name, Leases: r.snap.Leases, LastSeen: r.lastSeen, WatchOnly: r.snap.WatchOnly,
			Gone: now.Sub(r.lastSeen) > v.s.goneAfter}
		if !ni.Gone {
			for i := range r.snap.Shards {
				info := r.snap.Shards[i].info(name)
				countNode(&ni, &info)
				dst.Shards = append(dst.Shards, info)
			}
			ident += r.snap.Ident
			resumes += r.snap.Resumes
			dropped += r.snap.Dropped
		}
		nodes = append(nodes, ni)
	}
	v.mu.Unlock()
	if v.local != nil && v.s.leases != nil {
		nodes[0].Leases = v.s.leases()
	}
	slices.SortFunc(nodes, func(a, b manager.NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	dst.Nodes = nodes
	if len(dst.Shards) > nLocal {
		dst.Shards = mergeShards(dst.Shards)
	}
	dst.Totals = totals(dst.Shards, ident, resumes, dropped)
	dst.At = now
}

func countNode(n *manager.NodeInfo, s *manager.ShardInfo) {
	if s.Role != manager.RoleActive {
		return
	}
	n.Shards++
	if s.State == gateway.StateReady {
		n.Ready++
	}
}

// mergeShards sorts by (ID, Count) and keeps one row per key: the Ready
// one, else the one that changed state last. It reuses s's storage.
func mergeShards(s []manager.ShardInfo) []manager.ShardInfo {
	slices.SortStableFunc(s, func(a, b manager.ShardInfo) int {
		return cmp.Or(cmp.Compare(a.Key.ID, b.Key.ID), cmp.Compare(a.Key.Count, b.Key.Count))
	})
	out := s[:0]
	for i := range s {
		if n := len(out); n > 0 && out[n-1].Key == s[i].Key {
			if better(&s[i], &out[n-1]) {
				out[n-1] = s[i]
			}
			continue
		}
		out = append(out, s[i])
	}
	return out
}

func better(a, b *manager.ShardInfo) bool {
	ar, br := a.State == gateway.StateReady, b.State == gateway.StateReady
	if ar != br {
		return ar
	}
	return a.Since.After(b.Since)
}

func totals(s []manager.ShardInfo, ident, resumes, dropped uint64) manager.Totals {
	t := manager.Totals{Identifies: ident, Resumes: resumes, DroppedEvents: dropped}
	t.AddActive(s)
	return t
}

// ShardDetailInto fills dst for a local shard; false for a remote or
// unknown one (details are not published).
func (v *View) ShardDetailInto(key manager.ShardKey, dst *manager.ShardDetail) bool {
	if v.local == nil {
		return false
	}
	return v.local.ShardDetailInto(key, dst)
}

// Subscribe returns the local manager's lifecycle events; a watch-only
// view returns a channel that never delivers and is never closed.
func (v *View) Subscribe(buffer int) (<-chan manager.Event, func()) {
	if v.local == nil {
		return v.never, func() {}
	}
	return v.local.Subscribe(buffer)
}

// OpenShard starts shard id on the node that runs it.
func (v *View) OpenShard(ctx context.Context, id int) error {
	return v.shardAction(ctx, opOpen, id, 0, Actions.OpenShard)
}

// CloseShard closes shard id on the node that runs it.
func (v *View) CloseShard(ctx context.Context, id int) error {
	return v.shardAction(ctx, opClose, id, 0, Actions.CloseShard)
}

// ResumeShard resumes shard id on the node that runs it.
func (v *View) ResumeShard(ctx context.Context, id int) error {
	return v.shardAction(ctx, opResume, id, 0, Actions.ResumeShard)
}

// RestartShard restarts shard id on the node that runs it.
func (v *View) RestartShard(ctx context.Context, id int) error {
	return v.shardAction(ctx, opRestart, id, 0, Actions.RestartShard)
}

// SplitShard splits shard id into k on the node that runs it.
func (v *View) SplitShard(ctx context.Context, id, k int) error {
	return v.shardAction(ctx, opSplit, id, k, func(a Actions, ctx context.Context, id int) error {
		return a.SplitShard(ctx, id, k)
	})
}

// Reshard asks the local manager to re-shard the bot; a watch-only view
// asks the first live node that runs shards.
func (v *View) Reshard(ctx context.Context, count int) error {
	if v.local != nil {
		return v.local.Reshard(ctx, count)
	}
	now := time.Now()
	var target string
	v.mu.Lock()
	for name, r := range v.nodes {
		if !r.snap.WatchOnly && now.Sub(r.lastSeen) <= v.s.goneAfter && (target == "" || name < target) {
			target = name
		}
	}
	v.mu.Unlock()
	if target == "" {
		return fmt.Errorf("reshard %d: %w", count, ErrNoNode)
	}
	return v.request(ctx, target, actionRequest{Op: opReshard, Count: count}, count)
}

// localHas reports whether the local manager runs active shard id.
func (v *View) localHas(id int) bool {
	v.actMu.Lock()
	defer v.actMu.Unlock()
	v.local.SnapshotInto(&v.actSnap)
	for i := range v.actSnap.Shards {
		if s := &v.actSnap.Shards[i]; s.Key.ID == id && s.Role == manager.RoleActive {
			return true
		}
	}
	return false
}

// owner is the live remote node running active shard id (Ready first,
// then the most recent), or "".
func (v *View) owner(id int) string {
	now := time.Now()
	var best string
	var bestInfo manager.ShardInfo
	v.mu.Lock()
	defer v.mu.Unlock()
	for name, r := range v.nodes {
		if now.Sub(r.lastSeen) > v.s.goneAfter {
			continue
		}
		for i := range r.snap.Shards {
			w := &r.snap.Shards[i]
			if w.ID != id || manager.Role(w.Role) != manager.RoleActive {
				continue
			}
			if info := w.info(name); best == "" || better(&info, &bestInfo) {
				best, bestInfo = name, info
			}
		}
	}
	return best
}

func (v *View) shardAction(ctx context.Context, op string, id, k int, local func(Actions, context.Context, int) error) error {
	if v.local != nil && v.localHas(id) {
		return local(v.local, ctx, id)
	}
	if node := v.owner(id); node != "" {
		return v.request(ctx, node, actionRequest{Op: op, ID: &id, K: k}, id)
	}
	if v.local != nil {
		return local(v.local, ctx, id) // the local manager's own error
	}
	return &manager.ShardError{Key: manager.ShardKey{ID: id}, Op: op, Err: manager.ErrUnknownShard}
}

// request sends req to node's action subject and waits for its answer
// within ctx's deadline (the action timeout if ctx has none).
func (v *View) request(ctx context.Context, node string, req actionRequest, id int) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, v.s.actionTimeout)
		defer cancel()
	}
	dl, _ := ctx.Deadline()
	req.TimeoutMS = max(time.Until(dl).Milliseconds(), 1)
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("clusterview: encode %s request: %w", req.Op, err)
	}
	subj := actionSubject(v.s.prefix, node)
	msg, err := v.nc.RequestWithContext(ctx, subj, data)
	if err != nil {
		return &RemoteError{Node: node, Op: req.Op, ID: id, Msg: err.Error(), Err: err}
	}
	var rep actionReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return &RemoteError{Node: node, Op: req.Op, ID: id, Msg: err.Error(), Err: ErrBadReply}
	}
	if rep.Error == "" {
		return nil
	}
	return &RemoteError{Node: node, Op: req.Op, ID: id, Msg: rep.Error, Err: sentinels[rep.Code]}
}
