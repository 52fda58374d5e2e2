package gateway

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// sampleMessageCreate is a ~1 KB MESSAGE_CREATE like Discord's.
func sampleMessageCreate(seq int64) []byte {
	content := strings.Repeat(fmt.Sprintf("message %d says hi; ", seq), 1+int(seq%5))
	return fmt.Appendf(nil, `{"t":"MESSAGE_CREATE","s":%d,"op":0,"d":{"type":0,"tts":false,"timestamp":"2024-05-01T12:00:%02d.000000+00:00","pinned":false,"nonce":"%d","mentions":[],"mention_roles":[],"mention_everyone":false,"member":{"roles":["1234567890123456789"],"premium_since":null,"pending":false,"nick":null,"mute":false,"joined_at":"2023-01-01T00:00:00.000000+00:00","flags":0,"deaf":false,"communication_disabled_until":null,"avatar":null},"id":"12%017d","flags":0,"embeds":[{"type":"rich","title":"embed","description":"an embed with some text in it","color":5814783}],"edited_timestamp":null,"content":"%s","components":[],"channel_id":"1098765432109876543","author":{"username":"someone","public_flags":0,"id":"1111111111111111111","global_name":"Some One","discriminator":"0","avatar_decoration_data":null,"avatar":"a_0123456789abcdef0123456789abcdef"},"attachments":[],"guild_id":"1122334455667788990"}}`,
		seq, seq%60, seq, seq, content)
}

func sampleReady() []byte {
	return []byte(`{"t":"READY","s":1,"op":0,"d":{"v":10,"user":{"id":"1","username":"bot","bot":true},"session_id":"abc123","resume_gateway_url":"ws:\/\/127.0.0.1:1\/gateway-resume","shard":[0,1],"guilds":[{"id":"41771983423143937","unavailable":true},{"id":"41771983423143938","unavailable":true}]}}`)
}

// recordZlib compresses payloads as Discord's zlib-stream does: one zlib
// stream, a sync flush after each payload, one message per flush.
func recordZlib(t testing.TB, payloads [][]byte) [][]byte {
	var buf bytes.Buffer
	w, err := zlib.NewWriterLevel(&buf, zlib.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for _, p := range payloads {
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, bytes.Clone(buf.Bytes()))
		buf.Reset()
	}
	return msgs
}

// recordZstd compresses payloads as zstd-stream: one encoder, a Flush after
// each payload, the frame never ended.
func recordZstd(t testing.TB, payloads [][]byte, opts ...zstd.EOption) [][]byte {
	var buf bytes.Buffer
	opts = append([]zstd.EOption{zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(32 << 10), zstd.WithEncoderLevel(zstd.SpeedFastest)}, opts...)
	w, err := zstd.NewWriter(&buf, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var msgs [][]byte
	for _, p := range payloads {
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, bytes.Clone(buf.Bytes()))
		buf.Reset()
	}
	return msgs
}

func samplePayloads(n int) [][]byte {
	p := make([][]byte, n)
	for i := range p {
		p[i] = sampleMessageCreate(int64(i + 1))
	}
	return p
}
