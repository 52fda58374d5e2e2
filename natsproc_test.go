package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardtop/shardtop/internal/poll"
	"github.com/shardtop/shardtop/internal/syncbuf"
)

// The end-to-end bus tests and the bus benchmarks run the nats-server
// binary people deploy, built from the module's version of
// github.com/nats-io/nats-server/v2 beside the test's shardtop binary.

var natsServerBin struct {
	once sync.Once
	path string
	err  error
}

// buildNATSServer builds the nats-server binary of the module's version,
// once per test binary.
func buildNATSServer(tb testing.TB) string {
	tb.Helper()
	natsServerBin.once.Do(func() {
		natsServerBin.path = filepath.Join(filepath.Dir(shardtopBin), "nats-server") // removed with it
		out, err := exec.Command("go", "build", "-o", natsServerBin.path, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsServerBin.err = fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	})
	if natsServerBin.err != nil {
		tb.Fatal(natsServerBin.err)
	}
	return natsServerBin.path
}

// natsProc is a nats-server process with JetStream.
type natsProc struct {
	cmd *exec.Cmd
	url string
}

// startNATSProc runs the nats-server binary on a free loopback port until
// tb's cleanup. The server picks the port and writes it to a ports file:
// no other process can take it in between.
func startNATSProc(tb testing.TB) *natsProc {
	tb.Helper()
	bin := buildNATSServer(tb)
	portsDir := tb.TempDir()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", tb.TempDir(), "--ports_file_dir", portsDir)
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	n := &natsProc{cmd: cmd}
	poll.UntilState(tb, 30*time.Second, "nats-server to accept connections", func() (bool, string) {
		if n.url == "" {
			files, _ := filepath.Glob(filepath.Join(portsDir, "*.ports"))
			if len(files) == 0 {
				return false, out.String()
			}
			b, err := os.ReadFile(files[0])
			var ports struct {
				Nats []string `json:"nats"`
			}
			if err != nil || json.Unmarshal(b, &ports) != nil || len(ports.Nats) == 0 {
				return false, fmt.Sprintf("ports file %q: %s\n%s", b, err, out.String())
			}
			n.url = ports.Nats[0]
		}
		nc, err := nats.Connect(n.url)
		if err == nil {
			nc.Close()
		}
		return err == nil, out.String()
	})
	return n
}
