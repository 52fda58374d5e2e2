package sharedlimiter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Keys of the KV bucket (see doc.go).
const (
	budgetKey    = "budget"
	bucketPrefix = "b."
	waiterPrefix = "w."
	nodePrefix   = "n."
)

func bucketKey(i int) string { return bucketPrefix + strconv.Itoa(i) }

func waiterKey(i int, id string) string { return waiterPrefix + strconv.Itoa(i) + "." + id }

// Bucket key states.
const (
	stateHeld = "held"
	stateFree = "free"
)

// bucketVal is a bucket key's value: the identify in flight (held) or the
// outcome of the last one (free). When it was written is the entry's
// server timestamp, never a field.
type bucketVal struct {
	State  string `json:"state"`
	Node   string `json:"node,omitempty"`
	Holder string `json:"holder,omitempty"` // the writing Limiter's instance ID
	Ticket uint64 `json:"ticket,omitempty"` // the holder's ticket
	Shard  int    `json:"shard"`
	Ready  bool   `json:"ready,omitempty"`
}

// budgetVal is the budget key's value. ResetAt is in the KV server's clock
// (estimated by the writer; see doc.go).
type budgetVal struct {
	Total     int       `json:"total"`
	Remaining int       `json:"remaining"`
	ResetAt   time.Time `json:"reset_at"`
}

// waiterVal is a waiters key's value: the head of one process's queue.
type waiterVal struct {
	Node     string    `json:"node,omitempty"`
	Shard    int       `json:"shard"`
	Enqueued time.Time `json:"enqueued"`
}

func parseBucket(key string, data []byte) (bucketVal, error) {
	var v bucketVal
	if err := json.Unmarshal(data, &v); err != nil {
		return v, &MalformedError{Key: key, Err: err}
	}
	if v.State != stateHeld && v.State != stateFree {
		return v, &MalformedError{Key: key, Err: fmt.Errorf("state %q is neither %q nor %q", v.State, stateHeld, stateFree)}
	}
	return v, nil
}

func parseBudget(key string, data []byte) (budgetVal, error) {
	var v budgetVal
	if err := json.Unmarshal(data, &v); err != nil {
		return v, &MalformedError{Key: key, Err: err}
	}
	if v.Total < 0 || v.Remaining < 0 || v.Remaining > v.Total || v.ResetAt.IsZero() {
		return v, &MalformedError{Key: key, Err: fmt.Errorf("total %d, remaining %d, reset_at %v out of range", v.Total, v.Remaining, v.ResetAt)}
	}
	return v, nil
}

func parseWaiter(key string, data []byte) (waiterVal, error) {
	var v waiterVal
	if err := json.Unmarshal(data, &v); err != nil {
		return v, &MalformedError{Key: key, Err: err}
	}
	if v.Enqueued.IsZero() {
		return v, &MalformedError{Key: key, Err: errors.New("no enqueued time")}
	}
	return v, nil
}

// ttlSeconds rounds d up to whole seconds, at least one: NATS per-message
// TTLs count whole seconds.
func ttlSeconds(d time.Duration) time.Duration {
	return max(time.Second, (d+time.Second-1)/time.Second*time.Second)
}

// publish writes value to key if key's last revision is rev (0: the key
// has no message), with a per-message TTL if ttl > 0: a kv.Update that
// can also carry a TTL. It returns the new revision; a lost race gives an
// error matching jetstream.ErrKeyRevisionMismatch.
func (l *Limiter) publish(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	m := &nats.Msg{Subject: l.subjectPrefix + key, Data: value}
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttlSeconds(ttl)))
	}
	ack, err := l.js.PublishMsg(ctx, m, opts...)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return 0, fmt.Errorf("key %s: %w: %w", key, err, jetstream.ErrKeyRevisionMismatch)
		}
		return 0, fmt.Errorf("key %s: %w", key, err)
	}
	return ack.Sequence, nil
}

// put writes value to key unconditionally, with a TTL.
func (l *Limiter) put(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	m := &nats.Msg{Subject: l.subjectPrefix + key, Data: value}
	ack, err := l.js.PublishMsg(ctx, m, jetstream.WithMsgTTL(ttlSeconds(ttl)))
	if err != nil {
		return 0, fmt.Errorf("key %s: %w", key, err)
	}
	return ack.Sequence, nil
}

// parseWaiterKey splits "w.<bucket>.<id>".
func parseWaiterKey(key string) (bucket int, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, waiterPrefix)
	if !ok {
		return 0, "", false
	}
	b, id, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.Atoi(b)
	if err != nil || n < 0 {
		return 0, "", false
	}
	return n, id, true
}
