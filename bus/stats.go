package bus

import "time"

// Stats is what the bus says about itself, for the TUI and the metrics.
type Stats struct {
	// Mode is "embedded" or "external"; URL the NATS URL the bus uses.
	Mode, URL string
	// Connected reports whether the NATS connection is up.
	Connected bool
	// Published counts events handed to NATS; Acked those the stream
	// acknowledged (Duplicates of them were already in it); Failed the
	// publishes that got an error (and are replayed by Discord).
	Published, Acked, Duplicates, Failed uint64
	// Refused counts events not published because the shard was held,
	// NATS disconnected or the buffer full: Discord replays them.
	Refused uint64
	// InFlight is published and not yet acknowledged, all shards, and
	// InFlightBytes their size; Buffer and BufferBytes are the bounds.
	InFlight      int
	InFlightBytes int64
	Buffer        int
	BufferBytes   int64
	// Held is how many shards are closed until the bus takes events again.
	Held int
	// Lost counts the events that could not be replayed (announced on the
	// stream by markers).
	Lost uint64
	// Stream describes the stream, as last read from JetStream (Updated).
	Stream StreamStats
	// Consumers are the stream's consumers, as last read.
	Consumers []ConsumerStats
	// Shards is each shard's backlog on the bus.
	Shards []ShardStats
	// Updated is when Stream and Consumers were read.
	Updated time.Time
}

// StreamStats is the stream's state.
type StreamStats struct {
	Name              string
	Msgs, Bytes       uint64
	FirstSeq, LastSeq uint64
}

// ConsumerStats is one consumer of the stream.
type ConsumerStats struct {
	Name string
	// Pending is messages not yet delivered to it; AckPending delivered
	// and not yet acknowledged; Redelivered delivered more than once.
	Pending                 uint64
	AckPending, Redelivered int
}

// ShardStats is one shard's traffic on the bus.
type ShardStats struct {
	ShardID, ShardCount int
	// InFlight is this shard's events published and not yet acknowledged.
	InFlight int
	// Held reports the shard closed until the bus takes events again.
	Held bool
	// Lost counts this shard's events that could not be replayed.
	Lost uint64
}
