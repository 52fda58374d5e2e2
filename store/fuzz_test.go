package store

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecode checks that no file content makes decode panic, and that
// whatever it accepts is written back and read again unchanged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(header + "version = 1\n\n[[shard]]\nid = 0\ncount = 16\nsession_id = \"abc\"\nsequence = 1234\nresume_url = \"wss://x.test\"\nupdated_at = 2026-11-22T05:00:00Z\nguilds = 1873\n"))
	f.Add([]byte("version = 1\n[[shard]]\nid = 0\ncount = 1\nsession_id = \"a\"\nsequence = 0\nguilds = -1\n"))
	f.Add([]byte("version = 1\nshard = [{id = 0, count = 1, session_id = \"a\", sequence = 0}]\n"))
	f.Add([]byte("version = 1\n[[shard]]\nid = 1\ncount = 1\n"))
	f.Add([]byte("version = 1\n[[ 'shard' ]]\n\"id\" = 0\ncount = 2\nsession_id = '''x'''\nsequence = 0\n"))
	f.Add([]byte("version = 1\nshard = []\n"))
	f.Add([]byte("[[shard]\n"))
	f.Add([]byte("version = 1\n[[bucket]]\nid = 1\nmax_concurrency = 4\nlast_identify = 2026-12-01T21:50:07.111Z\n"))
	f.Add([]byte("version = 1\n[[bucket]]\nid = 0\nmax_concurrency = 2\nlast_identify = 2026-12-01T21:50:07Z\n[[bucket]]\nid = 1\nmax_concurrency = 3\nlast_identify = 2026-12-01T21:50:07Z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		states, buckets, err := decode("fuzz.toml", data)
		if err != nil {
			return
		}
		sortStates(states)
		var buf bytes.Buffer
		if _, err := encode(&buf, states, buckets, nil); err != nil {
			t.Fatalf("encode of accepted records: %v", err)
		}
		again, bucketsAgain, err := decode("fuzz.toml", buf.Bytes())
		if err != nil {
			t.Fatalf("re-reading what we wrote: %v\n%s", err, buf.Bytes())
		}
		if !bucketsAgain.equal(buckets) && !(buckets.conc != 0 && allZero(buckets.at)) {
			t.Fatalf("buckets %+v became %+v", buckets, bucketsAgain)
		}
		if len(again) != len(states) {
			t.Fatalf("%d records became %d", len(states), len(again))
		}
		for i := range again {
			if !equalState(again[i], states[i]) {
				t.Fatalf("record %d: %+v became %+v", i, states[i], again[i])
			}
		}
	})
}

func allZero(at []time.Time) bool {
	for _, t := range at {
		if !t.IsZero() {
			return false
		}
	}
	return true
}
