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
}

func newPooledConn(tc *net.TCPConn) (*pooledConn, error) {
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &pooledConn{Conn: tc, raw: raw}
	c.readFD = c.readReady
	return c, nil
}

// Read reads from the borrowed chunk, else from the socket: straight into
// p when p is at least a chunk, else into a chunk borrowed for it.
func (c *pooledConn) Read(p []byte) (int, error) {
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
