package manager

import (
	"math"
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/limiter"
)

// ShardInfo is one shard in a Snapshot.
type ShardInfo struct {
	Key   ShardKey
	Role  Role
	State gateway.State
	Since time.Time // when State began
	// Latency is the last heartbeat round trip; SmoothedLatency its average.
	Latency, SmoothedLatency time.Duration
	Guilds                   int
	Events                   uint64  // dispatches received, total
	EventsPerSec             float64 // sampled once per sample interval
	Sequence                 int64
	SessionID                string
	ResumeURL                string // the session's resume_gateway_url
	Bucket                   int    // shard_id % max_concurrency
	QueuePos                 int    // place in the limiter's bucket queue (0 = head), -1 if not queued
	ReconnectAttempts        int
	Reconnects               uint64
	// LastCloseCode and LastCloseReason describe the shard's last close,
	// by Discord or by shardtop (a Close is 4000), kept across a restart.
	LastCloseCode   int
	LastCloseReason string
	LastCloseAt     time.Time
	// LastError is the error of the shard's last failed attempt or fatal
	// close, in full (kept across a restart too); LastErrorAt when it came.
	LastError   string
	LastErrorAt time.Time
	// RetryAt is when a Reconnecting shard dials again; zero otherwise.
	RetryAt             time.Time
	SequenceGaps        uint64
	Identifies, Resumes uint64
	Uptime              time.Duration // since the manager started this shard instance
	// Resumable reports that a session is saved for Key, so ResumeShard
	// would not fail with ErrNoSession (meaningful while the shard is stopped).
	Resumable bool
	// Busy reports that an action (close, restart, split, automatic split…)
	// runs on this shard: another one would fail with ErrBusy.
	Busy bool
	// Held reports a shard closed until the event sink takes events again.
	Held bool
	// Node names the shardtop process that runs the shard in a cluster;
	// empty for a manager on its own. A manager leaves it empty: the
	// cluster view fills it in when it merges the nodes' snapshots.
	Node string
}

// NodeInfo is one shardtop process of a clustered bot, as the cluster
// view last heard from it.
type NodeInfo struct {
	Name string
	// Shards and Ready count the active shards the node runs and those of
	// them Ready; Leases the shard leases it holds.
	Shards, Ready, Leases int
	// LastSeen is when the node's last snapshot arrived; Gone reports
	// that none came for longer than the node's lease expiry.
	LastSeen time.Time
	Gone     bool
	// Self marks the node of this process; WatchOnly a node that runs no
	// shards, only watches and steers the cluster.
	Self, WatchOnly bool
}

// Totals sums up a Snapshot.
type Totals struct {
	Ready, Total int // active shards Ready / active shards
	EventsPerSec float64
	AvgLatency   time.Duration // over active Ready shards with a measured latency
	WorstLatency time.Duration
	// Identifies and Resumes count over the manager's life: shard instances
	// replaced by a restart, split or re-shard still count, so the totals
	// never go down.
	Identifies, Resumes uint64
	DroppedEvents       uint64 // lifecycle events subscribers did not take in time
}

// AddActive fills in t's figures of the active shards among shards:
// Ready, Total, EventsPerSec and the latencies, on a t that has none yet
// (Identifies, Resumes and DroppedEvents are left as they are). A view
// merging several managers' snapshots sums them the same way.
func (t *Totals) AddActive(shards []ShardInfo) {
	var latSum time.Duration
	var latN int
	for i := range shards {
		info := &shards[i]
		if info.Role != RoleActive {
			continue
		}
		t.Total++
		t.EventsPerSec += info.EventsPerSec
		if info.State == gateway.StateReady {
			t.Ready++
			if info.SmoothedLatency > 0 {
				latSum += info.SmoothedLatency
				latN++
				t.WorstLatency = max(t.WorstLatency, info.SmoothedLatency)
			}
		}
	}
	if latN > 0 {
		t.AvgLatency = latSum / time.Duration(latN)
	}
}

// Snapshot is the state of every shard and of the limiter, for display.
type Snapshot struct {
	At                time.Time
	Shards            []ShardInfo // sorted by (ID, Count)
	Limiter           limiter.Snapshot
	BotUser           User // zero until GET /users/@me or a READY names the bot
	MaxConcurrency    int
	RecommendedShards int
	Totals            Totals
	// Resharding reports that a whole re-shard runs: shard actions and
	// another re-shard would fail with ErrBusy.
	Resharding bool
	// CanReshard is false for a manager limited to some shard IDs
	// (WithShardIDs), which cannot re-shard the whole bot.
	CanReshard bool
	// Operations are the splits and re-shards in progress.
	Operations []Operation
	// Nodes lists the processes of a clustered bot, by name; nil for a
	// manager on its own (the cluster view fills it in).
	Nodes []NodeInfo
}

// Snapshot returns the current state. It reads what the loop published and
// each shard's own counters, taking no lock the loop holds; see
// SnapshotInto to reuse buffers.
func (m *Manager) Snapshot() Snapshot {
	var s Snapshot
	m.SnapshotInto(&s)
	return s
}

// infoFor describes e as of now.
func (m *Manager) infoFor(v *view, e *entry, now time.Time) ShardInfo {
	st := e.shard.Stats()
	pub := e.infoOf()
	info := ShardInfo{
		Key: e.key, Role: pub.role, State: st.State, Since: st.StateSince,
		Latency: st.Latency, SmoothedLatency: st.SmoothedLatency,
		Guilds: st.Guilds, Events: st.Events, EventsPerSec: math.Float64frombits(e.rate.Load()),
		Sequence: st.Sequence, SessionID: st.SessionID, ResumeURL: st.ResumeURL, QueuePos: -1,
		ReconnectAttempts: st.ReconnectAttempts, Reconnects: st.Reconnects,
		RetryAt:      st.RetryAt,
		SequenceGaps: st.SequenceGaps, Identifies: st.Identifies, Resumes: st.Resumes,
		Uptime: now.Sub(e.started), Resumable: pub.resumable, Busy: pub.busy, Held: pub.held,
	}
	info.LastCloseCode, info.LastCloseReason, info.LastCloseAt = e.lastClose(&st)
	info.LastError, info.LastErrorAt = e.lastError(&st)
	if v.maxConc > 0 {
		info.Bucket = e.key.ID % v.maxConc
	}
	if v.lim != nil && st.Ticket != 0 {
		if _, pos, ok := v.lim.Position(st.Ticket); ok {
			info.QueuePos = pos
		}
	}
	return info
}

// SnapshotInto fills dst, reusing dst.Shards' storage: a UI refreshing
// several times a second allocates nothing per shard.
func (m *Manager) SnapshotInto(dst *Snapshot) {
	v := m.view.Load()
	now := time.Now()
	m.lastRead.Store(now.UnixNano())
	t := Totals{Identifies: v.retired.identifies, Resumes: v.retired.resumes}
	shards := dst.Shards[:0]
	if cap(shards) < len(v.entries) {
		shards = make([]ShardInfo, 0, len(v.entries))
	}
	for _, e := range v.entries {
		info := m.infoFor(v, e, now)
		shards = append(shards, info)
		t.Identifies += info.Identifies
		t.Resumes += info.Resumes
	}
	t.AddActive(shards)
	t.DroppedEvents = m.subs.dropped.Load()

	dst.At = now
	dst.Shards = shards
	dst.MaxConcurrency, dst.RecommendedShards = v.maxConc, v.recommended
	dst.Totals = t
	dst.Resharding, dst.CanReshard, dst.Operations = v.resharding, v.canReshard, v.ops
	dst.BotUser = User{}
	if u := m.botUser.Load(); u != nil {
		dst.BotUser = *u
	}
	dst.Limiter = limiter.Snapshot{}
	if v.lim != nil {
		dst.Limiter = v.lim.Snapshot()
	}
}
