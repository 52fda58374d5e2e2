package store

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// The buckets' last identifies survive a close and a reopen, with the
// sessions, and only buckets that identified are written.
func TestLastIdentifiesRoundTrip(t *testing.T) {
	path := statePath(t)
	f := mustOpen(t, path)
	if conc, at := f.LastIdentifies(); conc != 0 || at != nil {
		t.Fatalf("new file: LastIdentifies = %d, %v; want none", conc, at)
	}
	t0 := time.Date(2026, 12, 1, 21, 50, 7, 111000000, time.UTC)
	at := []time.Time{t0, {}, t0.Add(time.Second), {}}
	if err := f.SetLastIdentifies(4, at); err != nil {
		t.Fatal(err)
	}
	mustPut(t, f, ShardState{ShardID: 0, ShardCount: 4, SessionID: "s", Sequence: 3})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "[[bucket]]"); n != 2 || !strings.Contains(string(raw), "last_identify = 2026-12-01T21:50:07.111Z") {
		t.Fatalf("file holds %d [[bucket]] tables, want the 2 that identified:\n%s", n, raw)
	}
	g := mustOpen(t, path)
	defer g.Close()
	conc, got := g.LastIdentifies()
	if conc != 4 || len(got) != 4 || !got[0].Equal(at[0]) || !got[1].IsZero() || !got[2].Equal(at[2]) || !got[3].IsZero() {
		t.Fatalf("reopened: LastIdentifies = %d, %v; want 4, %v", conc, got, at)
	}
	if len(g.Load()) != 1 {
		t.Fatalf("the session went missing beside the buckets")
	}
}

// SetLastIdentifies refuses what it could not write and read back; the
// same values again cause no write.
func TestSetLastIdentifiesValidates(t *testing.T) {
	f := mustOpen(t, statePath(t))
	defer f.Close()
	now := time.Now()
	for _, tc := range []struct {
		conc int
		at   []time.Time
	}{
		{0, nil}, {2, []time.Time{now}}, {MaxMaxConcurrency + 1, make([]time.Time, MaxMaxConcurrency+1)},
		{1, []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		if err := f.SetLastIdentifies(tc.conc, tc.at); !errors.Is(err, ErrInvalidState) {
			t.Errorf("SetLastIdentifies(%d, %d times): %v, want ErrInvalidState", tc.conc, len(tc.at), err)
		}
	}
	if err := f.SetLastIdentifies(1, []time.Time{now}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	gen := f.gen
	f.mu.Unlock()
	if err := f.SetLastIdentifies(1, []time.Time{now}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen != gen {
		t.Fatal("setting the same times again scheduled a write")
	}
}

// A bad [[bucket]] table is an error naming the line, the table and the
// key, and the file is left as it is.
func TestBadBucketTables(t *testing.T) {
	const ok = "last_identify = 2026-12-01T21:50:07Z\n"
	for _, tc := range []struct {
		name, body, want string
		line             int
	}{
		{"mixed counts", "[[bucket]]\nid = 0\nmax_concurrency = 2\n" + ok + "[[bucket]]\nid = 1\nmax_concurrency = 4\n" + ok, `[[bucket]] #2: key "max_concurrency"`, 8},
		{"id out of range", "[[bucket]]\nid = 4\nmax_concurrency = 4\n" + ok, `[[bucket]] #1: key "id": must be in [0, max_concurrency)`, 3},
		{"duplicate", "[[bucket]]\nid = 1\nmax_concurrency = 2\n" + ok + "[[bucket]]\nid = 1\nmax_concurrency = 2\n" + ok, `duplicate bucket 1`, 7},
		{"local time", "[[bucket]]\nid = 0\nmax_concurrency = 1\nlast_identify = 2026-12-01T21:50:07\n", `key "last_identify"`, 5},
		{"missing key", "[[bucket]]\nid = 0\nmax_concurrency = 1\n", `missing key "last_identify"`, 2},
		{"unknown key", "[[bucket]]\nid = 0\nmax_concurrency = 1\n" + ok + "at = 3\n", `key "at": unknown key`, 6},
		{"huge count", "[[bucket]]\nid = 0\nmax_concurrency = 9223372036854775807\n" + ok, `must be from 1 to 1024`, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := statePath(t)
			content := "version = 1\n" + tc.body
			writeRaw(t, path, content)
			_, err := OpenFile(path)
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || fe.Line != tc.line {
				t.Fatalf("OpenFile: %v (line %d); want ErrCorrupt at line %d saying %q", err, lineOrZero(fe), tc.line, tc.want)
			}
			assertRaw(t, path, content)
		})
	}
}

func lineOrZero(fe *FileError) int {
	if fe == nil {
		return 0
	}
	return fe.Line
}
