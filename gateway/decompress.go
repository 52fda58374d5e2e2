package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
)

// Compression is the transport compression asked for in the gateway URL.
type Compression string

// The transport compressions Discord offers.
const (
	CompressionNone       Compression = "none"
	CompressionZlibStream Compression = "zlib-stream"
	CompressionZstdStream Compression = "zstd-stream"
)

func (c Compression) valid() bool {
	return c == CompressionNone || c == CompressionZlibStream || c == CompressionZstdStream
}

// zlibSuffix ends every complete zlib-stream message: the sync flush's empty stored block.
var zlibSuffix = []byte{0x00, 0x00, 0xff, 0xff}

// errNeedInput is panicked by msgSource when a decompressor asks for bytes
// past the end of the current message. Go's inflaters make a read error
// sticky, so instead of returning io.EOF the source unwinds the Read; the
// decompressor is then parked at a block boundary (it only asks past a
// message's end when starting the next block) and continues with the next
// message's bytes.
var errNeedInput = errors.New("gateway: decompressor needs more input")

// msgSource feeds one message's bytes to a streaming decompressor.
type msgSource struct {
	b []byte
	i int
}

func (m *msgSource) reset(b []byte) { m.b, m.i = b, 0 }

// ReadByte implements io.ByteReader so flate does not wrap the source in a
// read-ahead bufio.Reader.
func (m *msgSource) ReadByte() (byte, error) {
	if m.i >= len(m.b) {
		panic(errNeedInput)
	}
	c := m.b[m.i]
	m.i++
	return c, nil
}

// Read implements io.Reader.
func (m *msgSource) Read(p []byte) (int, error) {
	if m.i >= len(m.b) {
		if len(p) == 0 {
			return 0, nil
		}
		panic(errNeedInput)
	}
	n := copy(p, m.b[m.i:])
	m.i += n
	return n, nil
}

// inflater turns the websocket messages of one connection into payloads.
type inflater interface {
	// decode appends the payload carried by msg to out. complete is false
	// when msg is only part of a payload (zlib-stream without the suffix yet).
	decode(msg, out []byte) (res []byte, complete bool, err error)
	// release returns pooled state; the inflater must not be used afterwards.
	release()
}

func newInflater(c Compression, maxPayload int, zstdMaxWindow uint64) (inflater, error) {
	switch c {
	case CompressionZlibStream:
		return &zlibInflater{max: maxPayload}, nil
	case CompressionZstdStream:
		return newZstdInflater(maxPayload, zstdMaxWindow)
	}
	return nil, nil
}

// minFree is the free output space kept before each decompressor Read.
const minFree = 4 << 10

// drain reads r into out until r asks past the end of src (errNeedInput).
// Any other panic from a decompressor is turned into an error: bytes from
// the network must never crash the process.
func drain(stage string, r io.Reader, src *msgSource, out []byte, max int) (res []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			res = out
			if p == errNeedInput { //nolint:errorlint // identity of the panic value
				if len(out) > max {
					err = &DecodeError{Stage: stage, Offset: -1, Reason: fmt.Sprintf("payload larger than %d bytes", max)}
				}
				return
			}
			err = &DecodeError{Stage: stage, Offset: src.i, Reason: fmt.Sprintf("decompressor panic: %v", p)}
		}
	}()
	for {
		if cap(out)-len(out) < minFree {
			if len(out) > max {
				return out, &DecodeError{Stage: stage, Offset: -1, Reason: fmt.Sprintf("payload larger than %d bytes", max)}
			}
			out = slices.Grow(out, minFree)
		}
		n, rerr := r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if rerr != nil {
			return out, &DecodeError{Stage: stage, Offset: src.i, Reason: "corrupt stream", Err: rerr}
		}
	}
}

// zlibInflater decodes zlib-stream: one inflate context per connection.
type zlibInflater struct {
	fr      io.ReadCloser // flate decompressor; nil until the header was read
	src     msgSource
	pending []byte // messages buffered until one ends with zlibSuffix
	max     int
	broken  bool
}

var flatePool sync.Pool // of io.ReadCloser (flate decompressors, ~45 KiB each)

func (z *zlibInflater) decode(msg, out []byte) ([]byte, bool, error) {
	if z.broken {
		return out, false, &DecodeError{Stage: "zlib", Offset: -1, Reason: "stream already failed"}
	}
	in := msg
	if len(z.pending) > 0 || !bytes.HasSuffix(msg, zlibSuffix) {
		if len(z.pending)+len(msg) > z.max {
			z.broken = true
			return out, false, &DecodeError{Stage: "zlib", Offset: -1, Reason: fmt.Sprintf("buffered compressed data exceeds %d bytes", z.max)}
		}
		z.pending = append(z.pending, msg...)
		if !bytes.HasSuffix(msg, zlibSuffix) {
			return out, false, nil
		}
		in = z.pending
	}
	if z.fr == nil {
		if len(in) < 2 {
			z.broken = true
			return out, false, &DecodeError{Stage: "zlib", Offset: 0, Reason: "short zlib header"}
		}
		cmf, flg := in[0], in[1]
		if cmf&0x0f != 8 || (uint16(cmf)<<8|uint16(flg))%31 != 0 || flg&0x20 != 0 {
			z.broken = true
			return out, false, &DecodeError{Stage: "zlib", Offset: 0, Reason: "bad zlib header"}
		}
		in = in[2:]
		z.src.reset(nil)
		if fr, ok := flatePool.Get().(io.ReadCloser); ok {
			_ = fr.(flate.Resetter).Reset(&z.src, nil)
			z.fr = fr
		} else {
			z.fr = flate.NewReader(&z.src)
		}
	}
	z.src.reset(in)
	res, err := drain("zlib", z.fr, &z.src, out, z.max)
	z.src.reset(nil)
	if len(z.pending) > 0 {
		if cap(z.pending) > 64<<10 {
			z.pending = nil
		} else {
			z.pending = z.pending[:0]
		}
	}
	if err != nil {
		z.broken = true
		return res, false, err
	}
	return res, true, nil
}

func (z *zlibInflater) release() {
	if z.fr != nil && !z.broken {
		flatePool.Put(z.fr)
	}
	z.fr, z.pending = nil, nil
}

// zstdInflater decodes zstd-stream: one zstd decoder per connection, fed every message.
type zstdInflater struct {
	dec    *zstd.Decoder
	src    msgSource
	max    int
	window uint64
	broken bool
}

// zstdPools holds idle decoders per max window: a decoder keeps its history
// ring (window + 2 blocks) between uses.
var zstdPools sync.Map // uint64 -> *sync.Pool

func zstdPool(window uint64) *sync.Pool {
	if p, ok := zstdPools.Load(window); ok {
		return p.(*sync.Pool)
	}
	p, _ := zstdPools.LoadOrStore(window, &sync.Pool{})
	return p.(*sync.Pool)
}

func newZstdInflater(max int, window uint64) (*zstdInflater, error) {
	z := &zstdInflater{max: max}
	if d, ok := zstdPool(window).Get().(*zstd.Decoder); ok {
		z.dec = d
	} else {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1), // synchronous: decodes inside Read, no goroutines
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(window),
			zstd.WithDecoderMaxMemory(uint64(max)+window),
			// A zstd-stream frame never ends, so its checksum is never
			// checked: hashing every payload for it is wasted work.
			zstd.IgnoreChecksum(true),
		)
		if err != nil {
			return nil, fmt.Errorf("gateway: zstd decoder: %w", err)
		}
		z.dec = d
	}
	if err := z.dec.Reset(&z.src); err != nil {
		z.dec.Close()
		return nil, fmt.Errorf("gateway: zstd decoder reset: %w", err)
	}
	z.window = window
	return z, nil
}

func (z *zstdInflater) decode(msg, out []byte) ([]byte, bool, error) {
	if z.broken {
		return out, false, &DecodeError{Stage: "zstd", Offset: -1, Reason: "stream already failed"}
	}
	z.src.reset(msg)
	res, err := drain("zstd", z.dec, &z.src, out, z.max)
	z.src.reset(nil)
	if err != nil {
		z.broken = true
		return res, false, err
	}
	return res, true, nil
}

func (z *zstdInflater) release() {
	if z.dec == nil {
		return
	}
	if z.broken {
		z.dec.Close()
	} else if z.dec.Reset(nil) == nil {
		zstdPool(z.window).Put(z.dec)
	}
	z.dec = nil
}
