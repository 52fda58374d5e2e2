//go:build unix

package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/gorilla/websocket"
)

// readChunk is the size of the buffers a plain (ws://) connection reads
// the socket into. They are borrowed from a pool only while they hold
// unread bytes, so their size costs nothing per idle connection: a burst
// is read in few system calls.
const readChunk = 16 << 10

// smallReadBuffer is gorilla's own read buffer on a connection that reads
// through a pooledConn: frame headers and the first bytes of a frame pass
// through it, the rest of a payload goes straight from the chunk to the
// caller. Kept for the life of the connection, so small.
const smallReadBuffer = 512

var readChunkPool = sync.Pool{New: func() any { b := make([]byte, readChunk); return &b }}

// pooledConn is a TCP connection whose reads borrow a chunk from
// readChunkPool only while it holds unread bytes: parked in a read, an idle
// connection holds no buffer (gorilla's bufio.Reader would keep 4 KiB).
// It waits for the socket through syscall.RawConn, which waits without a
// buffer, and then reads what is there into a borrowed chunk.
type pooledConn struct {
	net.Conn
	raw   syscall.RawConn
	chunk *[]byte // borrowed while pos < end
	pos   int
	end   int

	// readFD is c.readReady bound once, so that a Read allocates nothing;
	// it leaves its outcome in got, n and rerr.
	readFD func(fd uintptr) bool
	got    *[]byte
	n      int
	rerr   error

	// handshake is true until endHandshake: writes gather in pending
	// (a borrowed chunk) and go out together at the next Read.
	handshake bool
	pending   *[]byte
	one       [1]byte // WriteByte's byte after the handshake
}

func newPooledConn(tc *net.TCPConn) (*pooledConn, error) {
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &pooledConn{Conn: tc, raw: raw, handshake: true}
	c.readFD = c.readReady
	return c, nil
}

// WriteByte makes pooledConn an io.ByteWriter, which net/http's
// Request.Write takes as buffered: it then writes the upgrade request
// straight to the connection instead of through a 4 KiB bufio.Writer of
// its own, garbage after every dial. The buffering is ours: during the
// handshake writes gather in a borrowed chunk until the response is read.
func (c *pooledConn) WriteByte(b byte) error {
	c.one[0] = b
	_, err := c.Write(c.one[:])
	return err
}

// Write gathers p during the handshake, else writes it.
func (c *pooledConn) Write(p []byte) (int, error) {
	if !c.handshake {
		return c.Conn.Write(p)
	}
	if c.pending == nil {
		c.pending = readChunkPool.Get().(*[]byte)
		*c.pending = (*c.pending)[:0]
	}
	*c.pending = append(*c.pending, p...)
	return len(p), nil
}

// flush writes what the handshake gathered.
func (c *pooledConn) flush() error {
	b := c.pending
	if b == nil {
		return nil
	}
	c.pending = nil
	_, err := c.Conn.Write(*b)
	if cap(*b) == readChunk { // not regrown by a request larger than a chunk
		*b = (*b)[:readChunk]
		readChunkPool.Put(b)
	}
	return err
}

// endHandshake is called once the websocket is up: from then on writes go
// straight to the socket. Nothing is pending then (the response was read,
// and Read flushes first). It must come before the reader and the writers
// start, as they use the connection concurrently.
func (c *pooledConn) endHandshake() { c.handshake = false }

// Read reads from the borrowed chunk, else from the socket: straight into
// p when p is at least a chunk, else into a chunk borrowed for it.
func (c *pooledConn) Read(p []byte) (int, error) {
	if c.pending != nil {
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.chunk == nil {
		if len(p) >= readChunk {
			return c.Conn.Read(p) // the caller's buffer waits, not ours
		}
		if err := c.raw.Read(c.readFD); err != nil {
			return 0, c.opError(err)
		}
		if c.rerr != nil || c.n == 0 {
			readChunkPool.Put(c.got)
			if c.rerr != nil {
				return 0, c.opError(os.NewSyscallError("read", c.rerr))
			}
			return 0, io.EOF
		}
		c.chunk, c.pos, c.end = c.got, 0, c.n
	}
	n := copy(p, (*c.chunk)[c.pos:c.end])
	c.pos += n
	if c.pos == c.end {
		readChunkPool.Put(c.chunk)
		c.chunk = nil
	}
	return n, nil
}

// readReady is called by RawConn.Read when the socket may be readable: it
// borrows a chunk and reads into it, or, with nothing to read yet, gives
// the chunk back and asks RawConn to wait.
func (c *pooledConn) readReady(fd uintptr) bool {
	b := readChunkPool.Get().(*[]byte)
	for {
		n, err := syscall.Read(int(fd), *b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			readChunkPool.Put(b)
			return false
		}
		c.got, c.n, c.rerr = b, max(n, 0), err
		return true
	}
}

// opError wraps err as net's own Read would.
func (c *pooledConn) opError(err error) error {
	if oe, ok := errors.AsType[*net.OpError](err); ok {
		err = oe.Err // RawConn's "raw-read" error: deadline or closed
	}
	return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// dialPooled is the plain dialer's NetDialContext: a TCP connection read
// through a pooledConn.
func dialPooled(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc, nil
	}
	c, err := newPooledConn(tc)
	if err != nil {
		return nc, nil // read it plainly
	}
	return c, nil
}

// plainDialer is the default dialer for ws:// URLs (a local gateway proxy,
// the simulator): reads through a pooledConn, so gorilla's own read buffer
// can be small. wss:// goes through defaultDialer: crypto/tls buffers each
// record itself.
var plainDialer = &websocket.Dialer{
	Proxy:           defaultDialer.Proxy,
	NetDialContext:  dialPooled,
	ReadBufferSize:  smallReadBuffer,
	WriteBufferSize: defaultDialer.WriteBufferSize,
	WriteBufferPool: defaultDialer.WriteBufferPool,
}
