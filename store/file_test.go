package store

import (
	"context"
	"errors"
	"fmt"
	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/internal/syncbuf"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// The shape the manager is expected to declare; *File must keep fitting it.
var _ interface {
	Load() []ShardState
	Put(ShardState) error
	Delete(shardID, shardCount int) error
	Flush(ctx context.Context) error
	Close() error
} = (*File)(nil)

func statePath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "state.toml")
}

func mustOpen(t *testing.T, path string, opts ...Option) *File {
	t.Helper()
	f, err := OpenFile(path, opts...)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	return f
}

func mustPut(t *testing.T, f *File, states ...ShardState) {
	t.Helper()
	for _, s := range states {
		if err := f.Put(s); err != nil {
			t.Fatalf("Put(%+v): %v", s, err)
		}
	}
}

func assertStates(t *testing.T, got, want []ShardState) {
	t.Helper()
	want = slices.Clone(want)
	sortStates(want)
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d:\ngot  %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range got {
		if !equalState(got[i], want[i]) {
			t.Fatalf("record %d:\ngot  %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

var updated = time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)

func sampleStates() []ShardState {
	return []ShardState{
		{ShardID: 3, ShardCount: 16, SessionID: "abc", Sequence: 1234, ResumeURL: "wss://gateway-us-east1-b.discord.gg", UpdatedAt: updated, Guilds: 1873},
		{ShardID: 0, ShardCount: 16, SessionID: "s0", Sequence: 0, ResumeURL: "wss://gateway.discord.gg"},
		// After a split the same ID exists under two counts.
		{ShardID: 3, ShardCount: 32, SessionID: "new", Sequence: 9, UpdatedAt: updated.Add(time.Second), Guilds: 2500},
		{ShardID: 1, ShardCount: 8, SessionID: "quote\" back\\slash\nnewline\ttab é 🎉 #not-a-comment", Sequence: 1<<62 + 5,
			ResumeURL: "ws://127.0.0.1:4567/?x=\"y\"", UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600)), Guilds: 1 << 40},
	}
}

func TestRoundTrip(t *testing.T) {
	path := statePath(t)
	f := mustOpen(t, path)
	if got := f.Load(); len(got) != 0 {
		t.Fatalf("new store has %d records", len(got))
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("state file exists before any write: %v", err)
	}
	want := sampleStates()
	mustPut(t, f, want...)
	assertStates(t, f.Load(), want)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	for _, p := range []string{path, path + ".lock"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if !strings.HasPrefix(text, header) {
		t.Errorf("file does not start with the header comment:\n%s", text)
	}
	if !regexp.MustCompile(`(?m)^version = 1$`).MatchString(text) {
		t.Errorf("no `version = 1` line:\n%s", text)
	}
	// Records sorted by (count, id): read the id/count lines in file order.
	var order [][2]string
	for _, m := range regexp.MustCompile(`(?m)^id = (\d+)\ncount = (\d+)$`).FindAllStringSubmatch(text, -1) {
		order = append(order, [2]string{m[2], m[1]})
	}
	wantOrder := [][2]string{{"8", "1"}, {"16", "0"}, {"16", "3"}, {"32", "3"}}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("records in file order (count, id) = %v, want %v\n%s", order, wantOrder, text)
	}
	// Only the header and known keys: nothing else (like a token) can be in it.
	keyLine := regexp.MustCompile(`^(version|id|count|session_id|sequence|resume_url|updated_at|guilds) = `)
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if i == 0 || line == "" || line == "[[shard]]" || keyLine.MatchString(line) {
			continue
		}
		t.Errorf("unexpected line %d: %q", i+1, line)
	}
	assertNoTemps(t, filepath.Dir(path))

	g := mustOpen(t, path)
	defer g.Close()
	assertStates(t, g.Load(), want)
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestFileFormat(t *testing.T) {
	path := statePath(t)
	f := mustOpen(t, path)
	mustPut(t, f, ShardState{ShardID: 0, ShardCount: 16, SessionID: "abc", Sequence: 1234,
		ResumeURL: "wss://gateway.discord.gg", UpdatedAt: updated.In(time.FixedZone("CET", 3600)), Guilds: 1873},
		// guilds is written even when 0; the optional keys are left out.
		ShardState{ShardID: 1, ShardCount: 16, SessionID: "def", Sequence: 7})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := header + `version = 1

[[shard]]
id = 0
count = 16
session_id = "abc"
sequence = 1234
resume_url = "wss://gateway.discord.gg"
updated_at = 2026-11-22T05:00:00Z
guilds = 1873

[[shard]]
id = 1
count = 16
session_id = "def"
sequence = 7
guilds = 0
`
	if string(data) != want {
		t.Errorf("file:\n%s\nwant:\n%s", data, want)
	}
}

// A file written before guilds existed stays valid: its records read as 0
// guilds, and the next write adds the key.
func TestFileWithoutGuildsKey(t *testing.T) {
	path := statePath(t)
	legacy := header + "version = 1\n\n[[shard]]\nid = 2\ncount = 4\nsession_id = \"abc\"\nsequence = 99\nresume_url = \"wss://gateway.discord.gg\"\n"
	writeRaw(t, path, legacy)
	f := mustOpen(t, path)
	assertStates(t, f.Load(), []ShardState{{ShardID: 2, ShardCount: 4, SessionID: "abc", Sequence: 99, ResumeURL: "wss://gateway.discord.gg"}})
	mustPut(t, f, ShardState{ShardID: 2, ShardCount: 4, SessionID: "abc", Sequence: 100, ResumeURL: "wss://gateway.discord.gg", Guilds: 31})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	assertRaw(t, path, strings.Replace(legacy, "sequence = 99\n", "sequence = 100\n", 1)+"guilds = 31\n")
	g := mustOpen(t, path)
	defer g.Close()
	if got := g.Load(); len(got) != 1 || got[0].Guilds != 31 {
		t.Fatalf("read back %+v, want 31 guilds", got)
	}
}

// A change of the guild count alone is a change to write.
func TestGuildsChangeIsWritten(t *testing.T) {
	path := statePath(t)
	f := mustOpen(t, path)
	defer f.Close()
	st := ShardState{ShardID: 0, ShardCount: 1, SessionID: "abc", Sequence: 5}
	mustPut(t, f, st)
	if err := f.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Guilds = 12
	mustPut(t, f, st)
	if err := f.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), "\nguilds = 12\n") {
		t.Fatalf("guild count not written: %v\n%s", err, data)
	}
}

func TestPutRejectsInvalid(t *testing.T) {
	f := mustOpen(t, statePath(t))
	defer f.Close()
	ok := ShardState{ShardID: 1, ShardCount: 2, SessionID: "s", Sequence: 1, ResumeURL: "wss://x.test"}
	for _, tc := range []struct {
		name, key string
		mod       func(*ShardState)
	}{
		{"count zero", "count", func(s *ShardState) { s.ShardCount = 0 }},
		{"id negative", "id", func(s *ShardState) { s.ShardID = -1 }},
		{"id equals count", "id", func(s *ShardState) { s.ShardID = 2 }},
		{"empty session", "session_id", func(s *ShardState) { s.SessionID = "" }},
		{"bad utf-8 session", "session_id", func(s *ShardState) { s.SessionID = "a\xffb" }},
		{"negative sequence", "sequence", func(s *ShardState) { s.Sequence = -1 }},
		{"negative guilds", "guilds", func(s *ShardState) { s.Guilds = -1 }},
		{"http resume url", "resume_url", func(s *ShardState) { s.ResumeURL = "https://x.test" }},
		{"year 10000", "updated_at", func(s *ShardState) { s.UpdatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.mod(&s)
			err := f.Put(s)
			if !errors.Is(err, ErrInvalidState) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.key)) {
				t.Fatalf("Put: %v; want ErrInvalidState naming %q", err, tc.key)
			}
		})
	}
	if got := f.Load(); len(got) != 0 {
		t.Fatalf("rejected states were stored: %+v", got)
	}
	if err := f.Put(ok); err != nil {
		t.Fatalf("valid state: %v", err)
	}
}

func TestDeleteAndLoadCopy(t *testing.T) {
	path := statePath(t)
	f := mustOpen(t, path, WithFlushInterval(time.Hour))
	states := sampleStates()
	mustPut(t, f, states...)
	got := f.Load()
	got[0].SessionID = "changed"
	if f.Load()[0].SessionID == "changed" {
		t.Fatal("Load returned the store's own memory")
	}
	if err := f.Delete(3, 16); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete(5, 99); err != nil { // absent: no-op
		t.Fatal(err)
	}
	if err := f.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(states, func(s ShardState) bool { return s.ShardID == 3 && s.ShardCount == 16 })
	assertStates(t, f.Load(), want)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := mustOpen(t, path)
	defer g.Close()
	assertStates(t, g.Load(), want)
}

func TestCoalescesPuts(t *testing.T) {
	path := statePath(t)
	var w writeLog
	f := mustOpen(t, path, WithFlushInterval(time.Hour), w.option())
	const n = 10_000
	for i := range n {
		mustPut(t, f, ShardState{ShardID: i, ShardCount: n, SessionID: "s", Sequence: int64(i)})
	}
	// The first Put may be written at once (nothing was written before);
	// everything after it waits for the interval.
	if c := w.count(); c > 1 {
		t.Fatalf("%d writes during %d Puts, want at most 1", c, n)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	events, _ := w.snapshot()
	if len(events) > 2 {
		t.Fatalf("%d writes for %d Puts and Close, want at most 2", len(events), n)
	}
	if last := events[len(events)-1]; last.shards != n || last.err != nil {
		t.Fatalf("final write: %+v, want %d shards", last, n)
	}
	g := mustOpen(t, path)
	defer g.Close()
	if got := len(g.Load()); got != n {
		t.Fatalf("file holds %d records, want %d", got, n)
	}
}

func TestBackgroundWriteRespectsInterval(t *testing.T) {
	path := statePath(t)
	var w writeLog
	const interval = 40 * time.Millisecond
	f := mustOpen(t, path, WithFlushInterval(interval), w.option())
	defer f.Close()

	// Put continuously; the background writer alone must write, no more
	// than once per interval.
	var seq int64
	poll.Until(t, 5*time.Second, "4 background writes", func() bool {
		seq++
		mustPut(t, f, ShardState{ShardID: 0, ShardCount: 1, SessionID: "s", Sequence: seq})
		return w.count() >= 4
	})
	_, times := w.snapshot()
	for i := 1; i < len(times); i++ {
		// A write starts no sooner than interval after the previous one
		// ended, so it also ends at least that much later.
		if gap := times[i].Sub(times[i-1]); gap < interval {
			t.Errorf("write %d came %v after the previous one, want >= %v", i, gap, interval)
		}
	}
	// The last Put reaches the file without Flush.
	poll.Until(t, 5*time.Second, "last Put on disk", func() bool {
		data, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(data), fmt.Sprintf("sequence = %d\n", seq))
	})
}

func TestFlush(t *testing.T) {
	path := statePath(t)
	var w writeLog
	f := mustOpen(t, path, WithFlushInterval(time.Hour), w.option())
	defer f.Close()
	ctx := context.Background()

	if err := f.Flush(ctx); err != nil || w.count() != 0 {
		t.Fatalf("Flush of a clean store: err %v, %d writes; want nil, 0", err, w.count())
	}
	mustPut(t, f, ShardState{ShardID: 0, ShardCount: 1, SessionID: "a", Sequence: 1})
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The first Put may also have been written in the background.
	before := w.count()
	mustPut(t, f, ShardState{ShardID: 0, ShardCount: 1, SessionID: "a", Sequence: 2})
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.count(); got != before+1 {
		t.Fatalf("Flush made %d writes, want 1 (interval is an hour)", got-before)
	}
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), "sequence = 2\n") {
		t.Fatalf("after Flush the file lacks the Put (err %v):\n%s", err, data)
	}
	// Putting an identical state changes nothing and writes nothing.
	mustPut(t, f, ShardState{ShardID: 0, ShardCount: 1, SessionID: "a", Sequence: 2})
	if err := f.Flush(ctx); err != nil || w.count() != before+1 {
		t.Fatalf("unchanged Put + Flush: err %v, %d extra writes", err, w.count()-before-1)
	}
	// A cancelled context stops Flush before it writes.
	mustPut(t, f, ShardState{ShardID: 0, ShardCount: 1, SessionID: "a", Sequence: 3})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.Flush(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush with cancelled ctx: %v", err)
	}
}

func TestClosed(t *testing.T) {
	path := statePath(t)
	f := mustOpen(t, path)
	s := ShardState{ShardID: 0, ShardCount: 1, SessionID: "a", Sequence: 1}
	mustPut(t, f, s)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(s); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: %v", err)
	}
	if err := f.Delete(0, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Delete after Close: %v", err)
	}
	if err := f.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close: %v", err)
	}
	if err := f.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	assertStates(t, f.Load(), []ShardState{s})
}

func TestLockedSameProcess(t *testing.T) {
	path := statePath(t)
	f := mustOpen(t, path)
	_, err := OpenFile(path)
	var le *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) {
		t.Fatalf("second OpenFile: %v; want ErrLocked", err)
	}
	if le.PID != os.Getpid() || !strings.Contains(err.Error(), path) ||
		!strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("error %q (pid %d) should name %s and pid %d", err, le.PID, path, os.Getpid())
	}
	// A relative spelling of the same file is the same lock.
	wd, _ := os.Getwd()
	if rel, rerr := filepath.Rel(wd, path); rerr == nil {
		if _, err := OpenFile(rel); !errors.Is(err, ErrLocked) {
			t.Fatalf("OpenFile(%q): %v; want ErrLocked", rel, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := mustOpen(t, path)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptSyntax(t *testing.T) {
	path := statePath(t)
	bad := header + "version = 1\n\n[[shard]]\nid = 0\ncount = 16\nsession_id = \"abc\nsequence = 1\n"
	writeRaw(t, path, bad)
	_, err := OpenFile(path)
	var fe *FileError
	if !errors.As(err, &fe) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenFile: %v; want *FileError matching ErrCorrupt", err)
	}
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		t.Errorf("error does not wrap toml.ParseError: %v", err)
	}
	if fe.Line != 7 || !strings.Contains(err.Error(), path+":7:") {
		t.Errorf("error %q: line %d, want %s:7", err, fe.Line, path)
	}
	assertRaw(t, path, bad)
	assertNoCorruptFiles(t, path)
	// The failed open released the lock.
	if err := os.WriteFile(path, []byte(header+"version = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path).Close()
}

func TestCorruptValues(t *testing.T) {
	const shard = "[[shard]]\nid = 0\ncount = 16\nsession_id = \"abc\"\nsequence = 1\n"
	for _, tc := range []struct {
		name  string
		body  string // after the header line
		line  int    // 1-based, counting the header line
		entry int
		key   string
		msg   string
	}{
		{"missing version", "[[shard]]\nid = 0\n", 0, 0, "", "missing version"},
		{"version 2", "version = 2\n", 2, 0, "version", "unsupported version 2"},
		{"version string", "version = \"1\"\n", 2, 0, "version", "unsupported version"},
		{"unknown top-level key", "version = 1\ntoken = \"x\"\n", 3, 0, "token", "unknown key"},
		{"shard not a table", "version = 1\nshard = 5\n", 3, 0, "shard", "array of tables"},
		{"count zero", "version = 1\n" + shard + "\n[[shard]]\nid = 0\ncount = 0\nsession_id = \"x\"\nsequence = 1\n", 11, 2, "count", "greater than 0"},
		{"id out of range", "version = 1\n[[shard]]\nid = 16\ncount = 16\nsession_id = \"x\"\nsequence = 1\n", 4, 1, "id", "[0, count)"},
		{"negative sequence", "version = 1\n" + shard + "[[shard]]\nid = 1\ncount = 16\nsession_id = \"x\"\nsequence = -5\n", 12, 2, "sequence", "negative"},
		{"count is a string", "version = 1\n[[shard]]\nid = 1\ncount = \"16\"\nsession_id = \"x\"\nsequence = 1\n", 5, 1, "count", "must be an integer, got string"},
		{"session_id is an integer", "version = 1\n[[shard]]\nid = 1\ncount = 16\nsession_id = 7\nsequence = 1\n", 6, 1, "session_id", "must be a string"},
		{"missing session_id", "version = 1\n" + shard + "[[shard]]\nid = 1\ncount = 16\nsequence = 1\n", 8, 2, "", `missing key "session_id"`},
		{"unknown shard key", "version = 1\n" + shard + "  sesion_id = \"typo\"\n", 8, 1, "sesion_id", "unknown key"},
		{"local datetime", "version = 1\n" + shard + "updated_at = 2026-11-22T05:00:00\n", 8, 1, "updated_at", "with offset"},
		{"bad resume url", "version = 1\n" + shard + "resume_url = \"gateway.discord.gg\"\n", 8, 1, "resume_url", "ws:// or wss://"},
		{"negative guilds", "version = 1\n" + shard + "[[shard]]\nid = 1\ncount = 16\nsession_id = \"x\"\nguilds = -3\nsequence = 1\n", 12, 2, "guilds", "must not be negative, got -3"},
		{"guilds is a string", "version = 1\n" + shard + "guilds = \"12\"\n", 8, 1, "guilds", "must be an integer, got string"},
		{"guilds is a float", "version = 1\n" + shard + "guilds = 1.5\n", 8, 1, "guilds", "must be an integer, got float"},
		{"duplicate", "version = 1\n" + shard + shard + shard, 9, 2, "id", "duplicate shard 0 of 16 (already in [[shard]] #1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := statePath(t)
			content := header + tc.body
			writeRaw(t, path, content)
			_, err := OpenFile(path)
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenFile: %v; want *FileError matching ErrCorrupt", err)
			}
			if fe.Path != path || fe.Line != tc.line || fe.Entry != tc.entry || fe.Key != tc.key {
				t.Errorf("got path %s line %d entry %d key %q; want %s %d %d %q",
					fe.Path, fe.Line, fe.Entry, fe.Key, path, tc.line, tc.entry, tc.key)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tc.msg) ||
				(tc.key != "" && !strings.Contains(msg, fmt.Sprintf("%q", tc.key))) ||
				(tc.line > 0 && !strings.Contains(msg, fmt.Sprintf("%s:%d:", path, tc.line))) ||
				(tc.entry > 0 && !strings.Contains(msg, fmt.Sprintf("[[shard]] #%d", tc.entry))) {
				t.Errorf("message %q lacks the path, line, entry, key or %q", msg, tc.msg)
			}
			assertRaw(t, path, content)
			assertNoCorruptFiles(t, path)
		})
	}
}

func writeRaw(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func assertRaw(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s was changed:\n%s\nwant:\n%s", path, got, want)
	}
}

func assertNoCorruptFiles(t *testing.T, path string) {
	t.Helper()
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) > 0 {
		t.Fatalf("corrupt file moved aside without WithStartFresh: %v", m)
	}
}

func TestStartFresh(t *testing.T) {
	path := statePath(t)
	bad := header + "version = 1\n[[shard]]\nid = 0\ncount = 0\nsession_id = \"x\"\nsequence = 1\n"
	writeRaw(t, path, bad)
	var logs syncbuf.Buffer
	f := mustOpen(t, path, WithStartFresh(), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	moved, cause := f.MovedAside()
	if !errors.Is(cause, ErrCorrupt) {
		t.Errorf("MovedAside cause = %v, want ErrCorrupt", cause)
	}
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `\.corrupt-\d{8}T\d{6}Z$`).MatchString(moved) {
		t.Fatalf("moved to %q", moved)
	}
	assertRaw(t, moved, bad)
	if !strings.Contains(logs.String(), moved) {
		t.Errorf("log does not name %s:\n%s", moved, logs.String())
	}
	if got := f.Load(); len(got) != 0 {
		t.Fatalf("started with %d records, want none", len(got))
	}
	s := ShardState{ShardID: 0, ShardCount: 1, SessionID: "fresh", Sequence: 1}
	mustPut(t, f, s)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	assertRaw(t, moved, bad) // both files exist, the old one intact
	g := mustOpen(t, path)
	assertStates(t, g.Load(), []ShardState{s})
	if _, cause := g.MovedAside(); cause != nil {
		t.Errorf("good file reported as moved aside: %v", cause)
	}
	g.Close()
}

func TestMoveAsideNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.toml")
	now := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	for i, content := range []string{"one", "two", "three"} {
		writeRaw(t, path, content)
		moved, err := moveAside(path, now)
		if err != nil {
			t.Fatal(err)
		}
		want := path + ".corrupt-20261122T050000Z"
		if i > 0 {
			want += fmt.Sprintf("-%d", i+1)
		}
		if moved != want {
			t.Fatalf("moved to %s, want %s", moved, want)
		}
		assertRaw(t, moved, content)
	}
}

func TestUnreadable(t *testing.T) {
	path := statePath(t)
	writeRaw(t, path, header+"version = 1\n")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	if fh, err := os.Open(path); err == nil {
		fh.Close()
		t.Skip("this user can read a mode-000 file (root?), nothing to test")
	}
	_, err := OpenFile(path)
	var fe *FileError
	if !errors.As(err, &fe) || !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenFile: %v; want *FileError naming %s and wrapping fs.ErrPermission", err, path)
	}
}

func TestPathIsDirectory(t *testing.T) {
	path := statePath(t)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := OpenFile(path)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != path || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenFile on a directory: %v; want *FileError naming %s", err, path)
	}
	if errors.Is(err, ErrCorrupt) {
		t.Errorf("read failure reported as corrupt content: %v", err)
	}
}

func TestWriteErrorKeptAndRetried(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state.toml")
	var logs syncbuf.Buffer
	var w writeLog
	f := mustOpen(t, path, WithFlushInterval(time.Millisecond), w.option(),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	defer f.Close()
	a := ShardState{ShardID: 0, ShardCount: 2, SessionID: "a", Sequence: 1}
	mustPut(t, f, a)
	if err := f.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Take the directory away: writes fail (even for root).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	b := ShardState{ShardID: 1, ShardCount: 2, SessionID: "b", Sequence: 7}
	mustPut(t, f, b)
	err := f.Flush(context.Background())
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Flush into a missing directory: %v; want an error naming %s", err, path)
	}
	assertStates(t, f.Load(), []ShardState{a, b})
	poll.Until(t, 5*time.Second, "the failure to be logged", func() bool {
		return strings.Contains(logs.String(), "level=ERROR") && strings.Contains(logs.String(), "no such file")
	})
	// The background writer keeps retrying on its own (at retryDelay).
	failed := w.count()
	poll.Until(t, 5*time.Second, "a background retry", func() bool { return w.count() > failed })

	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the retried write on disk", func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
	if err := f.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after recovery: %v", err)
	}
	states, _, err := read(path)
	if err != nil {
		t.Fatal(err)
	}
	assertStates(t, states, []ShardState{a, b})
}

func TestConcurrentUse(t *testing.T) {
	path := statePath(t)
	f := mustOpen(t, path, WithFlushInterval(0))
	const workers, rounds, shards = 4, 300, 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				id := (w*rounds + i) % shards
				switch i % 10 {
				case 7:
					if err := f.Delete(id, shards); err != nil {
						t.Error(err)
					}
				case 8:
					_ = f.Load()
				case 9:
					if err := f.Flush(context.Background()); err != nil {
						t.Error(err)
					}
				default:
					if err := f.Put(ShardState{ShardID: id, ShardCount: shards, SessionID: fmt.Sprint("w", w), Sequence: int64(i)}); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	final := f.Load()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := mustOpen(t, path)
	defer g.Close()
	assertStates(t, g.Load(), final)
}

// TestEmptyStateFile: `touch state.toml` (or a file of blanks and
// comments) is no sessions, not a corrupt file, and stays as it is until
// there is something to write.
func TestEmptyStateFile(t *testing.T) {
	for _, content := range []string{"", "\n\n  \t\n", "# sessions go here\n\n# nothing yet\n", header} {
		path := statePath(t)
		writeRaw(t, path, content)
		f, err := OpenFile(path)
		if err != nil {
			t.Fatalf("OpenFile of %q: %v", content, err)
		}
		if got := f.Load(); len(got) != 0 {
			t.Errorf("%q: %d records", content, len(got))
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		assertRaw(t, path, content)
		assertNoCorruptFiles(t, path)
	}
}

// TestCountAboveMaxShardCount: no shardtop runs more than MaxShardCount
// shards, so a record beyond it is refused by Put and by the reader.
func TestCountAboveMaxShardCount(t *testing.T) {
	path := statePath(t)
	f := mustOpen(t, path)
	at := ShardState{ShardID: MaxShardCount - 1, ShardCount: MaxShardCount, SessionID: "s", Sequence: 1}
	mustPut(t, f, at)
	over := ShardState{ShardID: 0, ShardCount: MaxShardCount + 1, SessionID: "s", Sequence: 1}
	if err := f.Put(over); !errors.Is(err, ErrInvalidState) || !strings.Contains(err.Error(), "65536") {
		t.Errorf("Put of count %d: %v; want ErrInvalidState naming the bound", over.ShardCount, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	content := header + "version = 1\n[[shard]]\nid = 0\ncount = 9223372036854775807\nsession_id = \"x\"\nsequence = 1\n"
	writeRaw(t, path, content)
	_, err := OpenFile(path)
	var fe *FileError
	if !errors.As(err, &fe) || !errors.Is(err, ErrCorrupt) || fe.Line != 5 || fe.Key != "count" || !strings.Contains(err.Error(), "at most 65536") {
		t.Fatalf("OpenFile: %v; want a *FileError at line 5, key count, naming the bound", err)
	}
	assertRaw(t, path, content)
}
