package shardlease

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/shardtop/shardtop/internal/natstest"
)

// BenchmarkLeaseOps measures the lease operations one process sustains
// against a single server and a three-server R3 cluster: a renewal (the
// record rewritten as it is) and a session save, each one compare-and-set
// round trip.
func BenchmarkLeaseOps(b *testing.B) {
	for _, setup := range []struct {
		name     string
		servers  func(testing.TB) []*server.Server
		replicas int
	}{
		{"single", func(tb testing.TB) []*server.Server { return []*server.Server{natstest.Start(tb)} }, 1},
		{"R3", startCluster, 3},
	} {
		b.Run(setup.name, func(b *testing.B) {
			servers := setup.servers(b)
			tb := process(b, servers[0], "bench", WithReplicas(setup.replicas), WithTTL(time.Minute),
				WithRenewInterval(30*time.Second), WithSafetyMargin(10*time.Second))
			k := Key{0, 1}
			l, err := tb.Acquire(ctxT(b, 10*time.Second), k)
			if err != nil {
				b.Fatal(err)
			}
			b.Run("renew", func(b *testing.B) {
				ctx := ctxT(b, time.Minute)
				start := time.Now()
				for b.Loop() {
					if err := l.renew(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
			})
			b.Run("save", func(b *testing.B) {
				ctx := ctxT(b, time.Minute)
				st := session(k, "bench", 0)
				start := time.Now()
				for b.Loop() {
					st.Sequence++
					if err := l.Save(ctx, st); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
			})
		})
	}
}
