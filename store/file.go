package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shardtop/shardtop/internal/regularfile"
)

// File is a state store backed by a TOML file. It is safe for concurrent
// use. Create one with [OpenFile] and Close it when done.
type File struct {
	path     string
	cfg      config
	log      *slog.Logger
	lock     *fileLock
	movedTo  string
	startErr error

	ctx    context.Context // cancelled by Close, stops the writer
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: "there is something to write"
	done   chan struct{} // closed when the writer goroutine has exited

	// writeSem serialises writers (background and Flush); it guards buf,
	// docs and the file itself. A channel so Flush can give up on ctx.
	writeSem chan struct{}
	buf      bytes.Buffer
	docs     []shardDoc

	mu        sync.Mutex
	states    map[key]ShardState
	buckets   bucketTimes // the identify buckets' last identifies
	gen       uint64      // bumped by every change
	written   uint64      // gen that the file on disk holds
	lastWrite time.Time   // end of the last write attempt
	writeErr  error       // error of the last write attempt, nil once one succeeds
	closed    bool
}

// OpenFile locks the state file at path, reads it and starts the background
// writer. A missing file, or one with no content but blanks and comments,
// is an empty state; the file is created by the first write. If another
// holder has the lock, the error is a *[LockedError] matching [ErrLocked].
// If the file cannot be read or is invalid, the error is a *[FileError]
// and the file is left untouched, unless [WithStartFresh] was given. If
// path or its lock file is not a regular file, the error matches
// [ErrNotRegular] and nothing is touched, whatever the options.
//
// If path is a symbolic link, the file it points to is the state file: it
// is locked (its own path+".lock"), read and replaced by every write, and
// the link stays. A link to a file that does not exist yet is an error:
// shardtop would otherwise replace the link by a file of its own.
func OpenFile(path string, opts ...Option) (*File, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	path, err := resolve(path)
	if err != nil {
		return nil, err
	}
	log := cfg.logger.With("component", "store", "path", path)

	lock, err := lockFile(path, path+".lock", cfg.fileMode)
	if err != nil {
		return nil, err
	}
	f := &File{
		path:     path,
		cfg:      cfg,
		log:      log,
		lock:     lock,
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		writeSem: make(chan struct{}, 1),
		states:   make(map[key]ShardState),
	}
	removeTemps(path, log)

	states, buckets, err := read(path)
	if err != nil {
		// Moving a device or pipe aside and writing a file in its place
		// would break whatever else uses it (think /dev/null as root).
		if !cfg.startFresh || errors.Is(err, ErrNotRegular) {
			lock.release()
			return nil, err
		}
		moved, merr := moveAside(path, time.Now())
		if merr != nil {
			lock.release()
			return nil, fmt.Errorf("store: start fresh: %w (while setting aside: %w)", merr, err)
		}
		f.movedTo, f.startErr = moved, err
		// Info: MovedAside tells the caller, which says it to the user (the
		// program does, once); a warning here said it twice.
		log.Info("state file unusable; moved aside, starting with no sessions",
			"moved_to", moved, "err", err)
	}
	for _, s := range states {
		f.states[keyOf(s)] = s
	}
	f.buckets = buckets
	f.ctx, f.cancel = context.WithCancel(context.Background())
	go f.run()
	log.Debug("opened", "shards", len(states))
	return f, nil
}

// resolve makes path absolute and, if it is a symbolic link, returns the
// file it points to, so that writes replace that file and not the link. It
// refuses a path that exists and is not a regular file before any lock
// file is created beside it (a state file in /dev would put one there).
func resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("store: %s: %w", path, err)
	}
	fi, err := os.Lstat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return abs, nil
	}
	if err != nil {
		return "", &FileError{Path: abs, Err: err}
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(abs)
		if errors.Is(err, fs.ErrNotExist) {
			dest, _ := os.Readlink(abs)
			return "", &FileError{Path: abs, Err: fmt.Errorf("is a symbolic link to %s, which does not exist; create it (an empty file will do) or name the real file as the state file", dest)}
		}
		if err != nil {
			return "", &FileError{Path: abs, Err: err}
		}
		if fi, err = os.Stat(target); err != nil {
			return "", &FileError{Path: target, Err: err}
		}
		abs = target
	}
	if err := regularfile.Check(abs, fi); err != nil {
		return "", &FileError{Path: abs, Err: err}
	}
	return abs, nil
}

// read returns the records in path; a missing file is no records.
func read(path string) ([]ShardState, bucketTimes, error) {
	data, err := regularfile.Read(path, MaxFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, bucketTimes{}, nil
	}
	if errors.Is(err, regularfile.ErrTooLarge) {
		// No state file shardtop writes is that large: the content is wrong.
		return nil, bucketTimes{}, &FileError{Path: path, Err: &corruptError{
			msg: fmt.Sprintf("larger than %s, the limit of a state file", regularfile.Size(MaxFileSize)), cause: regularfile.ErrTooLarge}}
	}
	if err != nil {
		return nil, bucketTimes{}, &FileError{Path: path, Err: err}
	}
	return decode(path, data)
}

// moveAside renames path to path.corrupt-<UTC timestamp>, adding -2, -3, …
// if that name exists. We hold the lock, so nobody else renames in between.
func moveAside(path string, now time.Time) (string, error) {
	base := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	for i := 1; ; i++ {
		name := base
		if i > 1 {
			name = base + "-" + strconv.Itoa(i)
		}
		if _, err := os.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
			if err != nil {
				return "", err
			}
			continue
		}
		if err := os.Rename(path, name); err != nil {
			return "", err
		}
		return name, syncDir(filepath.Dir(path))
	}
}

// removeTemps deletes temporary files left by a write that was interrupted
// (a crash between create and rename). Only called with the lock held.
func removeTemps(path string, log *slog.Logger) {
	dir, prefix := filepath.Dir(path), filepath.Base(path)+".tmp-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				log.Debug("removed leftover temporary file", "name", e.Name())
			}
		}
	}
}

// Path returns the absolute path of the state file.
func (f *File) Path() string { return f.path }

// MovedAside reports, when [WithStartFresh] set an unusable state file
// aside, its new name and why it was unusable; otherwise "" and nil.
func (f *File) MovedAside() (newPath string, cause error) { return f.movedTo, f.startErr }

// Load returns a copy of all records, sorted by (count, id).
func (f *File) Load() []ShardState {
	f.mu.Lock()
	out := make([]ShardState, 0, len(f.states))
	for _, s := range f.states {
		out = append(out, s)
	}
	f.mu.Unlock()
	sortStates(out)
	return out
}

// Put stores s in memory, replacing the record with the same (ShardID,
// ShardCount), and schedules a coalesced write: the background writer
// writes no sooner than the flush interval after its previous write, so a
// change after a quiet period (a READY) is written at once and a burst of
// changes (sequence updates) costs one write per interval. Putting a record
// identical to the stored one changes nothing. It
// returns an error matching [ErrInvalidState] if s could not be read back
// (count <= 0, ID outside [0, count), empty session ID, negative sequence,
// invalid UTF-8, a resume URL that is not ws:// or wss://, a count above
// [MaxShardCount]), and [ErrClosed]
// after Close.
func (f *File) Put(s ShardState) error {
	if fe := validate(s); fe != nil {
		return fmt.Errorf("store: put shard %d of %d: %w: %v", s.ShardID, s.ShardCount, ErrInvalidState, fe)
	}
	s.UpdatedAt = s.UpdatedAt.UTC() // drop the monotonic reading; files say Z
	k := keyOf(s)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	if old, ok := f.states[k]; ok && equalState(old, s) {
		f.mu.Unlock()
		return nil
	}
	f.states[k] = s
	f.gen++
	f.mu.Unlock()
	f.poke()
	return nil
}

// Delete removes the record for (shardID, shardCount), if any, and
// schedules a write like Put. It returns [ErrClosed] after Close.
func (f *File) Delete(shardID, shardCount int) error {
	k := key{shardID, shardCount}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	if _, ok := f.states[k]; !ok {
		f.mu.Unlock()
		return nil
	}
	delete(f.states, k)
	f.gen++
	f.mu.Unlock()
	f.poke()
	return nil
}

// LastIdentifies returns the max_concurrency and, by identify bucket
// (shard_id % max_concurrency), the time of each bucket's last identify as
// saved by SetLastIdentifies or read from the file: zero where none is
// saved. maxConcurrency is 0 and at nil when none is. at is a copy.
func (f *File) LastIdentifies() (maxConcurrency int, at []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buckets.conc, slices.Clone(f.buckets.at)
}

// SetLastIdentifies replaces the buckets' last identifies (at[i] for bucket
// i of maxConcurrency, zero where there was none) and schedules a write
// like Put, so that the next run can wait out a window this one began.
// Unchanged values change nothing. It returns an error matching
// [ErrInvalidState] if maxConcurrency is outside [1, MaxMaxConcurrency] or
// at does not have maxConcurrency times of a year in [1, 9999], and
// [ErrClosed] after Close.
func (f *File) SetLastIdentifies(maxConcurrency int, at []time.Time) error {
	if maxConcurrency < 1 || maxConcurrency > MaxMaxConcurrency || len(at) != maxConcurrency {
		return fmt.Errorf("store: last identifies: %w: %d times for max_concurrency %d (must be from 1 to %d)",
			ErrInvalidState, len(at), maxConcurrency, MaxMaxConcurrency)
	}
	b := bucketTimes{conc: maxConcurrency, at: make([]time.Time, len(at))}
	for i, t := range at {
		if !t.IsZero() && (t.UTC().Year() < 1 || t.UTC().Year() > 9999) {
			return fmt.Errorf("store: last identify of bucket %d: %w: year %d is outside [1, 9999]", i, ErrInvalidState, t.UTC().Year())
		}
		b.at[i] = t.Round(0).UTC() // files say Z; no monotonic reading
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	if f.buckets.equal(b) {
		f.mu.Unlock()
		return nil
	}
	f.buckets = b
	f.gen++
	f.mu.Unlock()
	f.poke()
	return nil
}

// Flush writes the records now if anything changed since the last
// successful write, ignoring the flush interval, and returns once they are
// durable. If an earlier background write failed, the state is still
// pending, so Flush retries it and returns the outcome. It returns ctx.Err()
// if ctx ends before the write starts (a write in progress is not
// interrupted), and [ErrClosed] after Close.
func (f *File) Flush(ctx context.Context) error {
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return f.flush(ctx)
}

// Close stops the background writer, writes any pending change, and
// releases the lock. It returns the final write's error, if any; the
// records stay readable through Load. Calls after the first return
// [ErrClosed].
func (f *File) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	f.closed = true
	f.mu.Unlock()

	f.cancel()
	<-f.done
	err := f.flush(context.Background())
	if lerr := f.lock.release(); lerr != nil {
		err = errors.Join(err, fmt.Errorf("store: release lock: %w", lerr))
	}
	f.log.Debug("closed")
	return err
}

// poke tells the writer there is something to write.
func (f *File) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// run is the background writer: after a change it waits until the flush
// interval since the last write has passed, then writes.
func (f *File) run() {
	defer close(f.done)
	for {
		select {
		case <-f.kick:
		case <-f.ctx.Done():
			return
		}
		f.mu.Lock()
		wait := f.cfg.flushInterval
		if f.writeErr != nil {
			wait = max(wait, retryDelay)
		}
		wait = time.Until(f.lastWrite.Add(wait))
		f.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-f.ctx.Done():
				t.Stop()
				return
			}
		}
		if err := f.flush(f.ctx); err != nil && f.ctx.Err() == nil {
			f.poke() // still dirty: retry after the interval
		}
	}
}

// flush writes the current records if they differ from the file's.
func (f *File) flush(ctx context.Context) error {
	select {
	case f.writeSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-f.writeSem }()
	if err := ctx.Err(); err != nil {
		return err
	}

	// Snapshot under the lock, encode and write outside it.
	f.mu.Lock()
	if f.gen == f.written {
		f.mu.Unlock()
		return nil
	}
	gen := f.gen
	snap := make([]ShardState, 0, len(f.states))
	for _, s := range f.states {
		snap = append(snap, s)
	}
	buckets := f.buckets // never mutated: SetLastIdentifies replaces it
	f.mu.Unlock()
	sortStates(snap)

	start := time.Now()
	n, err := f.writeFile(snap, buckets)
	if err != nil {
		err = fmt.Errorf("store: write %s: %w", f.path, err)
	}

	f.mu.Lock()
	f.lastWrite = time.Now()
	prevErr := f.writeErr
	f.writeErr = err
	if err == nil {
		f.written = max(f.written, gen)
	}
	f.mu.Unlock()

	switch {
	case err != nil && prevErr == nil:
		f.log.Error("writing state failed; keeping it in memory and retrying", "err", err)
	case err != nil:
		f.log.Debug("writing state still fails", "err", err)
	case err == nil && prevErr != nil:
		f.log.Info("writing state works again", "shards", len(snap))
	case err == nil:
		f.log.Debug("wrote state", "shards", len(snap), "bytes", n, "took", time.Since(start))
	}
	if f.cfg.afterWrite != nil {
		f.cfg.afterWrite(writeEvent{shards: len(snap), bytes: n, err: err})
	}
	return err
}

// writeFile replaces the state file atomically: temp file in the same
// directory, write, fsync, rename over, fsync the directory. The caller
// holds writeSem. It returns the file's size.
func (f *File) writeFile(states []ShardState, buckets bucketTimes) (int, error) {
	f.buf.Reset()
	var err error
	if f.docs, err = encode(&f.buf, states, buckets, f.docs); err != nil {
		return 0, fmt.Errorf("encode: %w", err)
	}
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(f.path)+".tmp-*")
	if err != nil {
		return 0, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Chmod ignores the umask, so the mode is exactly the configured one.
	if err := tmp.Chmod(f.cfg.fileMode); err != nil {
		return 0, err
	}
	if _, err := tmp.Write(f.buf.Bytes()); err != nil {
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return 0, err
	}
	ok = true
	if err := syncDir(dir); err != nil {
		return 0, fmt.Errorf("sync directory: %w", err)
	}
	return f.buf.Len(), nil
}
