package bus

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardtop/shardtop/manager"
)

// lostRange is a run of a session's events that will not be replayed.
type lostRange struct {
	key      manager.ShardKey
	session  string
	from, to int64
	// scanFrom is the stream sequence from which to look for those of
	// them the stream has anyway; 0: none can be there.
	scanFrom uint64
	checked  bool  // the stream was searched and lost counted
	lost     int64 // how many the stream does not have
}

// maxScan bounds the messages read while checking a lost range.
const maxScan = 100_000

// queueLost has the watch goroutine check and announce r.
func (b *Bus) queueLost(r lostRange) {
	b.lostMu.Lock()
	b.lostQueue = append(b.lostQueue, r)
	b.lostMu.Unlock()
}

// announceLost checks and announces the queued lost ranges; what fails
// (the bus went down again) is tried again on the next tick.
func (b *Bus) announceLost() {
	b.lostMu.Lock()
	q := b.lostQueue
	b.lostQueue = nil
	b.lostMu.Unlock()
	if len(q) == 0 {
		return
	}
	var again []lostRange
	for i := range q {
		if b.closed.Load() || !b.up.Load() {
			again = append(again, q[i:]...)
			break
		}
		if err := b.announce(&q[i]); err != nil {
			b.log.Warn("announcing lost events; trying again", "shard", q[i].key.String(), "err", err)
			again = append(again, q[i])
		}
	}
	if len(again) > 0 {
		b.lostMu.Lock()
		b.lostQueue = append(again, b.lostQueue...)
		b.lostMu.Unlock()
	}
}

// announce counts r's lost events (once) and publishes its marker.
func (b *Bus) announce(r *lostRange) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !r.checked {
		stored, err := b.storedIn(ctx, r)
		if err != nil {
			return err
		}
		r.lost, r.checked = r.to-r.from+1-stored, true
		if r.lost > 0 {
			b.lost.Add(uint64(r.lost))
			st := b.shard(r.key)
			st.mu.Lock()
			st.lost += uint64(r.lost)
			st.mu.Unlock()
			b.log.Error("events lost: Discord could not replay them and the stream does not have them",
				"shard", r.key.String(), "session", r.session, "from", r.from, "to", r.to, "lost", r.lost)
		}
	}
	if r.lost == 0 {
		return nil
	}
	_, err := b.js.PublishMsg(ctx, b.marker(r), jetstream.WithRetryAttempts(0))
	return err
}

// storedIn counts r's events the stream has: published before the failure
// and stored although their acknowledgement never came. Per shard the
// stream is in order, so they follow the shard's last acknowledged event.
func (b *Bus) storedIn(ctx context.Context, r *lostRange) (int64, error) {
	if r.scanFrom == 0 {
		return 0, nil
	}
	subject := b.evPrefix + "*." + strconv.Itoa(r.key.ID)
	key := r.key.String()
	var stored int64
	seq := r.scanFrom
	for range maxScan {
		m, err := b.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return stored, nil
		}
		if err != nil {
			return 0, err
		}
		seq = m.Sequence + 1
		if m.Header.Get(HeaderShard) != key || m.Header.Get(HeaderEvent) == LostEvent {
			continue // another shard count's shard with this ID, or a marker
		}
		if m.Header.Get(HeaderSession) != r.session {
			return stored, nil // the new session: the old one's events are before it
		}
		if s, err := strconv.ParseInt(m.Header.Get(HeaderSeq), 10, 64); err == nil && s >= r.from && s <= r.to {
			stored++
		}
	}
	b.log.Warn("stopped checking the stream for lost events: counting the rest lost", "shard", key, "read", maxScan)
	return stored, nil
}

// marker is the message announcing r.
func (b *Bus) marker(r *lostRange) *nats.Msg {
	from, to, lost := strconv.FormatInt(r.from, 10), strconv.FormatInt(r.to, 10), strconv.FormatInt(r.lost, 10)
	body, _ := json.Marshal(struct {
		Shard   [2]int `json:"shard"`
		Session string `json:"session"`
		From    int64  `json:"from"`
		To      int64  `json:"to"`
		Lost    int64  `json:"lost"`
	}{[2]int{r.key.ID, r.key.Count}, r.session, r.from, r.to, r.lost})
	return &nats.Msg{
		Subject: b.evPrefix + LostEvent + "." + strconv.Itoa(r.key.ID),
		Header: nats.Header{
			HeaderShard:           {r.key.String()},
			HeaderSeq:             {from},
			HeaderSession:         {r.session},
			HeaderEvent:           {LostEvent},
			HeaderReceived:        {time.Now().UTC().Format(time.RFC3339Nano)},
			HeaderLostFrom:        {from},
			HeaderLostTo:          {to},
			HeaderLost:            {lost},
			jetstream.MsgIDHeader: {r.session + ":lost:" + from + "-" + to},
		},
		Data: body,
	}
}
