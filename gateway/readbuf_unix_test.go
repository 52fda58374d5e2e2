//go:build unix

package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"
)

// pooledPair returns a pooledConn over a loopback TCP connection and the
// other end of it; both close at cleanup.
func pooledPair(t *testing.T) (*pooledConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	nc, err := dialPooled(ctxT(t), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	pc, ok := nc.(*pooledConn)
	if !ok {
		t.Fatalf("dialPooled returned a %T", nc)
	}
	t.Cleanup(func() { _ = pc.Close(); _ = peer.Close() })
	return pc, peer
}

// Whatever the read sizes, a pooledConn delivers the stream as sent, then
// io.EOF; once it has handed out what arrived it holds no chunk.
func TestPooledConnDeliversTheStream(t *testing.T) {
	pc, peer := pooledPair(t)
	rng := rand.New(rand.NewPCG(5, 6))
	want := make([]byte, 3<<20)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	go func() {
		// Writes of every size, some larger than a chunk.
		for rest := want; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(3*readChunk))
			if _, err := peer.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
		_ = peer.(*net.TCPConn).CloseWrite()
	}()
	var got []byte
	buf := make([]byte, 2*readChunk)
	for {
		// Read sizes of every kind: gorilla's small buffer, frames, a chunk and more.
		n, err := pc.Read(buf[:1+rand.IntN(len(buf))])
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d sent", len(got), len(want))
	}
	if pc.chunk != nil {
		t.Fatal("a drained connection still holds a chunk")
	}
}

// A small read takes what arrived and keeps the rest for the next reads;
// when all is read the chunk goes back.
func TestPooledConnKeepsTheRestUntilRead(t *testing.T) {
	pc, peer := pooledPair(t)
	msg := []byte("0123456789abcdefghij")
	if _, err := peer.Write(msg); err != nil {
		t.Fatal(err)
	}
	// A rest dropped instead of kept would leave the reads below waiting.
	if err := pc.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 3)
	for len(got) < len(msg) {
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("got %q", got)
	}
	if pc.chunk != nil {
		t.Fatal("chunk held after everything was read")
	}
}

// Deadlines and Close reach a read parked on an idle connection, with the
// errors net's own Read gives.
func TestPooledConnDeadlineAndClose(t *testing.T) {
	pc, _ := pooledPair(t)
	if err := pc.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := pc.Read(make([]byte, 16))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if oe, ok := errors.AsType[*net.OpError](err); !ok || oe.Op != "read" {
		t.Fatalf("read past the deadline: %#v, want a *net.OpError of a read", err)
	}
	if err := pc.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := pc.Read(make([]byte, 16))
		done <- err
	}()
	// Close must wake the read wherever it is: parked or about to park.
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed connection: %v, want net.ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close did not end a parked read")
	}
}

// During the handshake a pooledConn gathers what is written and sends it
// at the next Read, so net/http writes the upgrade request without a
// bufio.Writer of its own (4 KiB of garbage per dial); after it, writes go
// straight out.
func TestPooledConnGathersTheHandshake(t *testing.T) {
	pc, peer := pooledPair(t)
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1/gateway?v=10", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Upgrade", "websocket")
	var want bytes.Buffer
	if err := req.Write(&want); err != nil {
		t.Fatal(err)
	}
	allocated := func(w io.Writer) uint64 {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		if err := req.Write(w); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&m1)
		return m1.TotalAlloc - m0.TotalAlloc
	}
	// Borrow the chunk first (the pool may have to make one), so that only
	// Request.Write's own allocations are counted.
	if _, err := pc.Write(nil); err != nil || pc.pending == nil {
		t.Fatalf("no chunk borrowed: %v", err)
	}
	viaPooled := allocated(pc)
	if !bytes.Equal(*pc.pending, want.Bytes()) {
		t.Fatalf("gathered %q, want the request %q", *pc.pending, want.Bytes())
	}
	if viaPlain := allocated(io.Discard); viaPooled+3000 > viaPlain {
		t.Fatalf("Request.Write allocated %d bytes through the pooledConn, %d through a plain writer: no bufio.Writer saved", viaPooled, viaPlain)
	}
	// The response's read sends the request first, in one piece.
	go func() {
		got := make([]byte, want.Len())
		if _, err := io.ReadFull(peer, got); err != nil || !bytes.Equal(got, want.Bytes()) {
			_ = peer.Close() // the Read below fails
			return
		}
		_, _ = peer.Write([]byte("HTTP/1.1 101 Switching Protocols\r\n\r\n"))
	}()
	if err := pc.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(pc), req)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("response: %v %v", resp, err)
	}
	pc.endHandshake()
	if _, err := pc.Write([]byte("x")); err != nil || pc.pending != nil {
		t.Fatalf("write after the handshake: %v, pending %v", err, pc.pending != nil)
	}
	got := make([]byte, 1)
	if _, err := io.ReadFull(peer, got); err != nil || got[0] != 'x' {
		t.Fatalf("peer read %q %v", got, err)
	}
}
