package clusterview

import (
	"time"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// The action ops on the wire.
const (
	opOpen    = "open"
	opClose   = "close"
	opResume  = "resume"
	opRestart = "restart"
	opSplit   = "split"
	opReshard = "reshard"
)

// wireSnapshot is what a Publisher sends: what the TUI table needs, short
// keys, zero fields left out. Times are Unix milliseconds, durations
// microseconds. It carries no token, session ID or resume URL.
type wireSnapshot struct {
	Node      string      `json:"n"`
	WatchOnly bool        `json:"w,omitzero"`
	At        int64       `json:"at"`
	Leases    int         `json:"l,omitzero"`
	Ident     uint64      `json:"ti,omitzero"` // totals over the manager's life
	Resumes   uint64      `json:"tr,omitzero"`
	Dropped   uint64      `json:"td,omitzero"`
	Shards    []wireShard `json:"s,omitzero"`
}

type wireShard struct {
	ID        int     `json:"i"`
	Count     int     `json:"c"`
	Role      uint8   `json:"r,omitzero"`
	State     uint8   `json:"st,omitzero"`
	Since     int64   `json:"sn,omitzero"`
	Lat       int64   `json:"lt,omitzero"`
	SLat      int64   `json:"sl,omitzero"`
	Guilds    int     `json:"g,omitzero"`
	Events    uint64  `json:"e,omitzero"`
	EPS       float64 `json:"eps,omitzero"`
	Seq       int64   `json:"q,omitzero"`
	Bucket    int     `json:"b,omitzero"`
	QueuePos  int     `json:"qp,omitzero"` // stored +1: 0 means not queued
	Attempts  int     `json:"ra,omitzero"`
	Reconn    uint64  `json:"rc,omitzero"`
	CloseCode int     `json:"cc,omitzero"`
	CloseWhy  string  `json:"cr,omitzero"`
	CloseAt   int64   `json:"ca,omitzero"`
	Err       string  `json:"er,omitzero"`
	ErrAt     int64   `json:"ea,omitzero"`
	RetryAt   int64   `json:"rt,omitzero"`
	Gaps      uint64  `json:"sg,omitzero"`
	Ident     uint64  `json:"id,omitzero"`
	Resumes   uint64  `json:"rs,omitzero"`
	Uptime    int64   `json:"up,omitzero"`
	Resumable bool    `json:"ok,omitzero"`
	Busy      bool    `json:"bz,omitzero"`
	Held      bool    `json:"h,omitzero"`
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

func toWire(s *manager.ShardInfo) wireShard {
	return wireShard{
		ID: s.Key.ID, Count: s.Key.Count, Role: uint8(s.Role), State: uint8(s.State), Since: ms(s.Since),
		Lat: s.Latency.Microseconds(), SLat: s.SmoothedLatency.Microseconds(), Guilds: s.Guilds,
		Events: s.Events, EPS: s.EventsPerSec, Seq: s.Sequence, Bucket: s.Bucket, QueuePos: s.QueuePos + 1,
		Attempts: s.ReconnectAttempts, Reconn: s.Reconnects, CloseCode: s.LastCloseCode,
		CloseWhy: s.LastCloseReason, CloseAt: ms(s.LastCloseAt), Err: s.LastError, ErrAt: ms(s.LastErrorAt),
		RetryAt: ms(s.RetryAt), Gaps: s.SequenceGaps, Ident: s.Identifies, Resumes: s.Resumes,
		Uptime: s.Uptime.Microseconds(), Resumable: s.Resumable, Busy: s.Busy, Held: s.Held,
	}
}

func (w *wireShard) info(node string) manager.ShardInfo {
	return manager.ShardInfo{
		Key: manager.ShardKey{ID: w.ID, Count: w.Count}, Role: manager.Role(w.Role), State: gateway.State(w.State),
		Since: fromMS(w.Since), Latency: time.Duration(w.Lat) * time.Microsecond,
		SmoothedLatency: time.Duration(w.SLat) * time.Microsecond, Guilds: w.Guilds, Events: w.Events,
		EventsPerSec: w.EPS, Sequence: w.Seq, Bucket: w.Bucket, QueuePos: w.QueuePos - 1,
		ReconnectAttempts: w.Attempts, Reconnects: w.Reconn, LastCloseCode: w.CloseCode,
		LastCloseReason: w.CloseWhy, LastCloseAt: fromMS(w.CloseAt), LastError: w.Err, LastErrorAt: fromMS(w.ErrAt),
		RetryAt: fromMS(w.RetryAt), SequenceGaps: w.Gaps, Identifies: w.Ident, Resumes: w.Resumes,
		Uptime: time.Duration(w.Uptime) * time.Microsecond, Resumable: w.Resumable, Busy: w.Busy, Held: w.Held,
		Node: node,
	}
}

// actionRequest asks a node to act on one of its shards.
type actionRequest struct {
	Op    string `json:"op"`
	ID    *int   `json:"id,omitempty"`
	K     int    `json:"k,omitempty"`     // split factor
	Count int    `json:"count,omitempty"` // re-shard target (0 = Discord's recommendation)
	// TimeoutMS is the requester's remaining deadline.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// actionReply is a node's answer: Error empty on success; Code names the
// manager sentinel the error matched.
type actionReply struct {
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

var sentinels = map[string]error{
	"unknown_shard": manager.ErrUnknownShard, "no_session": manager.ErrNoSession, "busy": manager.ErrBusy,
	"running": manager.ErrRunning, "closed": manager.ErrClosed, "not_open": manager.ErrNotOpen,
	"aborted": manager.ErrAborted, "bad_request": ErrBadRequest, "watch_only": ErrWatchOnly,
}
