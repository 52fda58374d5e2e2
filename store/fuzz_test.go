package store

import (
	"bytes"
	"testing"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		states, err := decode("fuzz.toml", data)
		if err != nil {
			return
		}
		sortStates(states)
		var buf bytes.Buffer
		if _, err := encode(&buf, states, nil); err != nil {
			t.Fatalf("encode of accepted records: %v", err)
		}
		again, err := decode("fuzz.toml", buf.Bytes())
		if err != nil {
			t.Fatalf("re-reading what we wrote: %v\n%s", err, buf.Bytes())
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
