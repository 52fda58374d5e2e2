// Package metrics exports a manager's state as Prometheus metrics: a
// Collector that takes one snapshot per scrape, and a Server for /metrics.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shardtop/shardtop/bus"
	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// Snapshotter is what the metrics need from the manager
// (*manager.Manager is one).
type Snapshotter interface {
	SnapshotInto(dst *manager.Snapshot)
}

// Bus is what the metrics need from the event bus (*bus.Bus is one).
type Bus interface {
	Stats() bus.Stats
}

var _ Bus = (*bus.Bus)(nil)

// Option configures a Collector (and Start).
type Option func(*Collector)

// WithBus exports the event bus's figures too, read once per scrape. A nil
// b (a nil *bus.Bus included: the bus is off) exports none.
func WithBus(b Bus) Option {
	return func(c *Collector) {
		if bb, ok := b.(*bus.Bus); ok && bb == nil {
			b = nil
		}
		c.bus = b
	}
}

// WithNode labels every series Start serves, the Go and process ones
// included, with node="name": the process's node in a clustered bot, so
// one Prometheus scraping every process tells them apart. Empty adds no
// label.
func WithNode(name string) Option { return func(c *Collector) { c.node = name } }

// busDescs are the event bus's series.
type busDescs struct {
	connected, published, acked, duplicates, failed, refused, lost *prometheus.Desc
	inFlight, inFlightBytes, buffer, bufferBytes, held             *prometheus.Desc
	streamMsgs, streamBytes                                        *prometheus.Desc
	consumerPending, consumerAckPending, consumerRedelivered       *prometheus.Desc
	shardInFlight, shardHeld, shardLost                            *prometheus.Desc
}

func newBusDescs() busDescs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("shardtop_bus_"+name, help, labels, nil)
	}
	shard := []string{"shard", "count"}
	return busDescs{
		connected:           d("connected", "1 while the bus's NATS connection is up."),
		published:           d("published_total", "Events handed to NATS."),
		acked:               d("acked_total", "Events the stream acknowledged."),
		duplicates:          d("duplicates_total", "Acknowledged events the stream already had."),
		failed:              d("failed_total", "Publishes that failed (Discord replays them)."),
		refused:             d("refused_total", "Events not published: shard held, NATS down or buffer full (Discord replays them)."),
		lost:                d("lost_events_total", "Events that could not be replayed (announced on the stream)."),
		inFlight:            d("in_flight", "Events published and not yet acknowledged."),
		inFlightBytes:       d("in_flight_bytes", "Size of the events in flight."),
		buffer:              d("buffer", "Most events in flight (the buffer)."),
		bufferBytes:         d("buffer_bytes", "Most bytes in flight (the buffer)."),
		held:                d("held_shards", "Shards closed until the bus takes events again."),
		streamMsgs:          d("stream_messages", "Messages in the stream.", "stream"),
		streamBytes:         d("stream_bytes", "Size of the stream.", "stream"),
		consumerPending:     d("consumer_pending", "Messages not yet delivered to the consumer (its backlog).", "consumer"),
		consumerAckPending:  d("consumer_ack_pending", "Messages delivered to the consumer and not yet acknowledged.", "consumer"),
		consumerRedelivered: d("consumer_redelivered", "Messages delivered to the consumer more than once, not yet acknowledged.", "consumer"),
		shardInFlight:       d("shard_in_flight", "The shard's events published and not yet acknowledged.", shard...),
		shardHeld:           d("shard_held", "1 while the shard is closed until the bus takes events again.", shard...),
		shardLost:           d("shard_lost_events_total", "The shard's events that could not be replayed.", shard...),
	}
}

func (d *busDescs) all() []*prometheus.Desc {
	return []*prometheus.Desc{
		d.connected, d.published, d.acked, d.duplicates, d.failed, d.refused, d.lost,
		d.inFlight, d.inFlightBytes, d.buffer, d.bufferBytes, d.held, d.streamMsgs, d.streamBytes,
		d.consumerPending, d.consumerAckPending, d.consumerRedelivered, d.shardInFlight, d.shardHeld, d.shardLost,
	}
}

// collectBus sends the bus's series.
func (c *Collector) collectBus(ch chan<- prometheus.Metric) {
	s := c.bus.Stats()
	d := &c.busD
	g := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	cnt := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	connected := 0.0
	if s.Connected {
		connected = 1
	}
	g(d.connected, connected)
	cnt(d.published, s.Published)
	cnt(d.acked, s.Acked)
	cnt(d.duplicates, s.Duplicates)
	cnt(d.failed, s.Failed)
	cnt(d.refused, s.Refused)
	cnt(d.lost, s.Lost)
	g(d.inFlight, float64(s.InFlight))
	g(d.inFlightBytes, float64(s.InFlightBytes))
	g(d.buffer, float64(s.Buffer))
	g(d.bufferBytes, float64(s.BufferBytes))
	g(d.held, float64(s.Held))
	if !s.Updated.IsZero() {
		g(d.streamMsgs, float64(s.Stream.Msgs), s.Stream.Name)
		g(d.streamBytes, float64(s.Stream.Bytes), s.Stream.Name)
	}
	for _, cs := range s.Consumers {
		g(d.consumerPending, float64(cs.Pending), cs.Name)
		g(d.consumerAckPending, float64(cs.AckPending), cs.Name)
		g(d.consumerRedelivered, float64(cs.Redelivered), cs.Name)
	}
	for _, sh := range s.Shards {
		id, count := strconv.Itoa(sh.ShardID), strconv.Itoa(sh.ShardCount)
		held := 0.0
		if sh.Held {
			held = 1
		}
		g(d.shardInFlight, float64(sh.InFlight), id, count)
		g(d.shardHeld, held, id, count)
		cnt(d.shardLost, sh.Lost, id, count)
	}
}

// shardStates are the states reported by shardtop_shards{state}, so that
// every state has a series (0 included) and alerts need no absent().
var shardStates = []gateway.State{
	gateway.StateIdle, gateway.StateQueued, gateway.StateConnecting, gateway.StateIdentifying,
	gateway.StateResuming, gateway.StateReady, gateway.StateReconnecting, gateway.StateClosed, gateway.StateFailed,
}

// Collector exports the manager's state as Prometheus metrics. It takes one
// Snapshot per scrape (never per event), reusing its buffers.
type Collector struct {
	src  Snapshotter
	node string // with WithNode: the node label of every series (Start adds it)
	bus  Bus    // nil: no bus series
	busD busDescs

	mu   sync.Mutex // guards snap (scrapes may overlap)
	snap manager.Snapshot

	shards, shardState, latency, events, reconnects, gaps, queue    *prometheus.Desc
	ready, total, budgetRemaining, budgetTotal, budgetReset         *prometheus.Desc
	maxConcurrency, identifies, resumes, droppedEvents, recommended *prometheus.Desc
}

// NewCollector returns a Collector reading src (and the bus, WithBus).
func NewCollector(src Snapshotter, opts ...Option) *Collector {
	shard := []string{"shard", "count"}
	c := &Collector{
		src:        src,
		shards:     prometheus.NewDesc("shardtop_shards", "Active shards by state.", []string{"state"}, nil),
		shardState: prometheus.NewDesc("shardtop_shard_state", "Always 1: the shard's current state and role are labels.", append(shard, "role", "state"), nil),
		latency:    prometheus.NewDesc("shardtop_shard_latency_seconds", "Smoothed heartbeat round trip of the shard.", shard, nil),
		events:     prometheus.NewDesc("shardtop_shard_events_total", "Dispatches received by the shard.", shard, nil),
		reconnects: prometheus.NewDesc("shardtop_shard_reconnects_total", "Reconnects of the shard.", shard, nil),
		gaps:       prometheus.NewDesc("shardtop_shard_sequence_gaps_total", "Gaps in the shard's dispatch sequence numbers.", shard, nil),
		queue:      prometheus.NewDesc("shardtop_identify_queue_length", "Shards waiting to identify, by bucket (shard_id % max_concurrency).", []string{"bucket"}, nil),
		ready:      prometheus.NewDesc("shardtop_shards_ready", "Active shards that are READY.", nil, nil),
		total:      prometheus.NewDesc("shardtop_shards_total", "Active shards.", nil, nil),
		budgetRemaining: prometheus.NewDesc("shardtop_session_start_remaining",
			"Identifies left in the daily session-start budget (absent until Discord told).", nil, nil),
		budgetTotal: prometheus.NewDesc("shardtop_session_start_total", "Identifies per budget period.", nil, nil),
		budgetReset: prometheus.NewDesc("shardtop_session_start_reset_seconds",
			"Seconds until the session-start budget resets.", nil, nil),
		maxConcurrency: prometheus.NewDesc("shardtop_max_concurrency", "Identify buckets (max_concurrency).", nil, nil),
		identifies:     prometheus.NewDesc("shardtop_identifies_total", "Identifies by the active shards.", nil, nil),
		resumes:        prometheus.NewDesc("shardtop_resumes_total", "Resumes by the active shards.", nil, nil),
		droppedEvents: prometheus.NewDesc("shardtop_lifecycle_events_dropped_total",
			"Lifecycle events slow subscribers did not take.", nil, nil),
		recommended: prometheus.NewDesc("shardtop_recommended_shards", "Discord's recommended shard count.", nil, nil),
	}
	for _, o := range opts {
		o(c)
	}
	if c.bus != nil {
		c.busD = newBusDescs()
	}
	return c
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.shards, c.shardState, c.latency, c.events, c.reconnects, c.gaps, c.queue,
		c.ready, c.total, c.budgetRemaining, c.budgetTotal, c.budgetReset,
		c.maxConcurrency, c.identifies, c.resumes, c.droppedEvents, c.recommended,
	} {
		ch <- d
	}
	if c.bus != nil {
		for _, d := range c.busD.all() {
			ch <- d
		}
	}
}

// Collect takes one snapshot and sends every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.src.SnapshotInto(&c.snap)
	s := &c.snap

	var byState [gateway.StateFailed + 1]int
	for i := range s.Shards {
		sh := &s.Shards[i]
		id, count := strconv.Itoa(sh.Key.ID), strconv.Itoa(sh.Key.Count)
		if sh.Role == manager.RoleActive && int(sh.State) < len(byState) {
			byState[sh.State]++
		}
		ch <- prometheus.MustNewConstMetric(c.shardState, prometheus.GaugeValue, 1, id, count, sh.Role.String(), sh.State.String())
		if sh.SmoothedLatency > 0 {
			ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, sh.SmoothedLatency.Seconds(), id, count)
		}
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(sh.Events), id, count)
		ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(sh.Reconnects), id, count)
		ch <- prometheus.MustNewConstMetric(c.gaps, prometheus.CounterValue, float64(sh.SequenceGaps), id, count)
	}
	for _, st := range shardStates {
		ch <- prometheus.MustNewConstMetric(c.shards, prometheus.GaugeValue, float64(byState[st]), st.String())
	}
	for _, b := range s.Limiter.Buckets {
		ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(len(b.Waiting)), strconv.Itoa(b.Index))
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, float64(s.Totals.Ready))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.Totals.Total))
	if b := s.Limiter.Budget; b.Known {
		ch <- prometheus.MustNewConstMetric(c.budgetRemaining, prometheus.GaugeValue, float64(b.Remaining))
		ch <- prometheus.MustNewConstMetric(c.budgetTotal, prometheus.GaugeValue, float64(b.Total))
		ch <- prometheus.MustNewConstMetric(c.budgetReset, prometheus.GaugeValue, max(time.Until(b.ResetAt), 0).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.maxConcurrency, prometheus.GaugeValue, float64(s.MaxConcurrency))
	ch <- prometheus.MustNewConstMetric(c.identifies, prometheus.CounterValue, float64(s.Totals.Identifies))
	ch <- prometheus.MustNewConstMetric(c.resumes, prometheus.CounterValue, float64(s.Totals.Resumes))
	ch <- prometheus.MustNewConstMetric(c.droppedEvents, prometheus.CounterValue, float64(s.Totals.DroppedEvents))
	ch <- prometheus.MustNewConstMetric(c.recommended, prometheus.GaugeValue, float64(s.RecommendedShards))
	if c.bus != nil {
		c.collectBus(ch)
	}
}

// Server serves /metrics over HTTP. Create it with Start.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
}

// Start listens on addr and serves a Collector of src (with opts) plus the
// Go and process collectors on /metrics; logger gets the server's errors.
func Start(addr string, src Snapshotter, logger *slog.Logger, opts ...Option) (*Server, error) {
	reg := prometheus.NewRegistry()
	c := NewCollector(src, opts...)
	var r prometheus.Registerer = reg
	if c.node != "" {
		r = prometheus.WrapRegistererWith(prometheus.Labels{"node": c.node}, reg)
	}
	r.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}))
	ms := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(ms.done)
		if err := ms.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server", "err", err)
		}
	}()
	logger.Info("metrics listening", "addr", ms.addr.String(), "path", "/metrics")
	return ms, nil
}

// Addr is the address the server listens on (the port chosen, for ":0").
func (ms *Server) Addr() net.Addr { return ms.addr }

// Close stops the server and waits for it.
func (ms *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := ms.srv.Shutdown(ctx)
	<-ms.done
	return err
}
