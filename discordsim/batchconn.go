package discordsim

import (
	"net"
	"sync"
	"time"
)

// batchConn wraps an accepted TCP connection so that the connection's writer
// can "cork" it: while corked, writes are gathered in a buffer and sent in one
// system call when it fills or the writer uncorks. During a burst this turns
// one write(2) per websocket message into one per ~32 KiB, which is what lets
// a single core push hundreds of thousands of small events per second.
//
// The mutex serialises the buffer between the connection's writer and
// gorilla's control-frame writes from the reader goroutine (close replies,
// pongs); it is per connection and uncontended in practice. It is held
// across the network write (order matters: a direct write must not overtake
// gathered bytes), so every network write has a deadline (timeout): a client
// that stops reading holds it at most that long, and after that every write
// fails at once (the connection is broken and gets torn down).
type batchConn struct {
	net.Conn
	timeout time.Duration
	mu      sync.Mutex
	corked  bool
	buf     []byte
	err     error
}

// batchFlushAt is the buffered size at which a corked connection writes out.
const batchFlushAt = 32 << 10

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.corked {
		n, err := b.writeNet(p)
		if err != nil {
			b.err = err
		}
		return n, err
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= batchFlushAt {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (b *batchConn) cork() {
	b.mu.Lock()
	b.corked = true
	b.mu.Unlock()
}

// uncork writes out whatever was gathered and returns to direct writes.
func (b *batchConn) uncork() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.corked = false
	if b.err != nil {
		return b.err
	}
	return b.flushLocked()
}

// flush writes out whatever was gathered and stays corked.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	return b.flushLocked()
}

func (b *batchConn) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.writeNet(b.buf)
	b.buf = b.buf[:0]
	if cap(b.buf) > 4*batchFlushAt {
		b.buf = nil
	}
	if err != nil {
		b.err = err
	}
	return err
}

// writeNet writes p to the network under the write deadline. It sets the
// deadline itself, after gorilla's own SetWriteDeadline (gorilla clears it
// before every data frame), so no write to the client is ever unbounded.
func (b *batchConn) writeNet(p []byte) (int, error) {
	if b.timeout > 0 {
		_ = b.Conn.SetWriteDeadline(time.Now().Add(b.timeout))
	}
	return b.Conn.Write(p)
}

// batchListener hands out batchConns whose writes time out after timeout.
type batchListener struct {
	net.Listener
	timeout time.Duration
}

func (l batchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &batchConn{Conn: c, timeout: l.timeout}, nil
}
