package gateway

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func decodeAll(t *testing.T, in inflater, msgs [][]byte) [][]byte {
	t.Helper()
	var outs [][]byte
	for i, m := range msgs {
		res, complete, err := in.decode(m, nil)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if complete {
			outs = append(outs, res)
		}
	}
	return outs
}

// payloadsWithSizes makes payloads whose sizes sweep across window boundaries,
// including ones that end a message exactly where the inflate window wraps.
func payloadsWithSizes(n int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]byte, n)
	total := 0
	for i := range out {
		size := 1 + r.IntN(3000)
		if i%7 == 3 { // land the cumulative size exactly on a 32 KiB boundary
			size = 32<<10 - total%(32<<10)
		}
		b := make([]byte, size)
		for j := range b {
			b[j] = "abcdefghij{}\":,0123456789"[r.IntN(25)]
			if r.IntN(4) == 0 {
				b[j] = byte(r.Uint32())
			}
		}
		out[i] = b
		total += size
	}
	return out
}

func TestZlibStreamRoundTrip(t *testing.T) {
	for _, payloads := range [][][]byte{samplePayloads(300), payloadsWithSizes(300, 7), {{}, []byte("x"), {}, make([]byte, 200<<10)}} {
		msgs := recordZlib(t, payloads)
		in, _ := newInflater(CompressionZlibStream, 1<<24, 0)
		got := decodeAll(t, in, msgs)
		in.release()
		if len(got) != len(payloads) {
			t.Fatalf("got %d payloads, want %d", len(got), len(payloads))
		}
		for i := range got {
			if !bytes.Equal(got[i], payloads[i]) {
				t.Fatalf("payload %d differs (len %d vs %d)", i, len(got[i]), len(payloads[i]))
			}
		}
	}
}

func TestZlibStreamSplitMessages(t *testing.T) {
	payloads := samplePayloads(50)
	msgs := recordZlib(t, payloads)
	// Discord may split one flush over several websocket messages.
	var split [][]byte
	for _, m := range msgs {
		h := len(m) / 2
		split = append(split, m[:h], m[h:])
	}
	in, _ := newInflater(CompressionZlibStream, 1<<24, 0)
	defer in.release()
	got := decodeAll(t, in, split)
	if len(got) != len(payloads) {
		t.Fatalf("got %d payloads, want %d", len(got), len(payloads))
	}
	for i := range got {
		if !bytes.Equal(got[i], payloads[i]) {
			t.Fatalf("payload %d differs", i)
		}
	}
}

func TestZstdStreamRoundTrip(t *testing.T) {
	sets := [][][]byte{samplePayloads(300), payloadsWithSizes(300, 9), {[]byte("x"), make([]byte, 300<<10), []byte("y")}}
	for i, payloads := range sets {
		msgs := recordZstd(t, payloads)
		in, err := newInflater(CompressionZstdStream, 1<<24, DefaultZstdMaxWindow)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeAll(t, in, msgs)
		in.release()
		if len(got) != len(payloads) {
			t.Fatalf("set %d: got %d payloads, want %d", i, len(got), len(payloads))
		}
		for j := range got {
			if !bytes.Equal(got[j], payloads[j]) {
				t.Fatalf("set %d payload %d differs", i, j)
			}
		}
	}
}

func TestZstdWindowBound(t *testing.T) {
	msgs := recordZstd(t, samplePayloads(3), zstd.WithWindowSize(1<<20))
	in, err := newInflater(CompressionZstdStream, 1<<24, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer in.release()
	_, _, err = in.decode(msgs[0], nil)
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("window over the bound: want *DecodeError, got %v", err)
	}
}

func TestDecodersRejectGarbage(t *testing.T) {
	good := recordZlib(t, samplePayloads(3))
	garbage := [][]byte{
		{0x78, 0x9c, 0xff, 0xff, 0xff, 0x00, 0x00, 0xff, 0xff},
		{0x00, 0x01, 0x00, 0x00, 0xff, 0xff},
		append(append([]byte{}, good[0][:len(good[0])-8]...), 0x00, 0x00, 0xff, 0xff),
	}
	for _, g := range garbage {
		in, _ := newInflater(CompressionZlibStream, 1<<20, 0)
		if _, _, err := in.decode(g, nil); err == nil {
			// Some garbage inflates to something; the next use must then fail or succeed without panicking.
			_, _, _ = in.decode(good[1], nil)
		}
		in.release()
	}
	zs, _ := newInflater(CompressionZstdStream, 1<<20, DefaultZstdMaxWindow)
	defer zs.release()
	if _, _, err := zs.decode([]byte{0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff}, nil); err == nil {
		t.Fatal("zstd garbage accepted")
	}
}

func TestDecodeBomb(t *testing.T) {
	msgs := recordZlib(t, [][]byte{make([]byte, 4<<20)})
	in, _ := newInflater(CompressionZlibStream, 1<<20, 0)
	defer in.release()
	if _, _, err := in.decode(msgs[0], nil); err == nil {
		t.Fatal("payload over the read limit accepted")
	}
}

func FuzzZlibStream(f *testing.F) {
	msgs := recordZlib(f, samplePayloads(4))
	f.Add(msgs[0], msgs[1])
	f.Add(msgs[0], []byte{0, 0, 0xff, 0xff})
	f.Add([]byte{0x78, 0x9c}, msgs[1])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		in, _ := newInflater(CompressionZlibStream, 1<<20, 0)
		defer in.release()
		if _, _, err := in.decode(a, nil); err == nil {
			_, _, _ = in.decode(b, nil)
		}
	})
}

func FuzzZstdStream(f *testing.F) {
	msgs := recordZstd(f, samplePayloads(4))
	f.Add(msgs[0], msgs[1])
	f.Add(msgs[0][:len(msgs[0])/2], msgs[0][len(msgs[0])/2:])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		in, err := newInflater(CompressionZstdStream, 1<<20, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer in.release()
		if _, _, err := in.decode(a, nil); err == nil {
			_, _, _ = in.decode(b, nil)
		}
	})
}
