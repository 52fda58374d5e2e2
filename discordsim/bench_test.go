package discordsim

import (
	"io"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkBurst measures how fast one connection's Burst pushes ~1 KB
// MESSAGE_CREATE dispatches over loopback to a client that only counts
// messages (no decoding), per compression mode. b.N is the number of events.
func BenchmarkBurst(b *testing.B) {
	for _, bc := range []struct {
		mode    string
		variety int
	}{{"", 0}, {"zlib-stream", 0}, {"zstd-stream", 0}, {"zlib-stream", 4}, {"zstd-stream", 4}} {
		mode := bc.mode
		name := mode
		if name == "" {
			name = "none"
		}
		if bc.variety != 0 {
			name += "-variety4"
		}
		b.Run(name, func(b *testing.B) {
			s := startSim(b, Config{Guilds: 16, HeartbeatInterval: time.Hour, MessageVariety: bc.variety})
			c := dial(b, s.GatewayURL(), mode)
			c.hello()
			c.identify("sim-token", 0, 1)
			got := make(chan int64, 1)
			go func() {
				var bytes int64
				buf := make([]byte, 64<<10)
				for n := 0; n < b.N; n++ {
					_, r, err := c.ws.NextReader()
					if err != nil {
						break
					}
					for {
						k, err := r.Read(buf)
						bytes += int64(k)
						if err == io.EOF {
							break
						}
						if err != nil {
							got <- bytes
							return
						}
					}
				}
				got <- bytes
			}()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			s.Burst(0, b.N)
			bytes := <-got
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
			b.ReportMetric(float64(bytes)/float64(b.N), "wire-B/event")
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
		})
	}
}

// BenchmarkRender isolates building one dispatch into a reused buffer.
func BenchmarkRender(b *testing.B) {
	pool := sharedMessages().guild
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = appendDispatch(buf[:0], entry{seq: int64(i), id: uint64(i) << 22, guild: GuildID(i % 100), b: pool[i%len(pool)]})
	}
	b.SetBytes(int64(len(buf)))
}
