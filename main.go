// Command shardtop supervises a Discord bot's gateway shards in a terminal UI:
// it starts every shard, paces identifies, keeps sessions across restarts and
// lets an operator close, resume, restart and split shards with a key press.
//
//	shardtop [-config shardtop.toml]   the TUI against Discord
//	shardtop --demo                    the TUI against an in-process simulator
//	shardtop --headless                no TUI: lifecycle events as log lines on stderr
//	shardtop sim [flags]               the simulator alone, for testing bots
//	shardtop tail [flags]              the events on the bus, as JSON lines
//
// Exit status: 0 after a normal stop (q, SIGINT or SIGTERM), 2 for bad usage
// or configuration, 1 for a runtime failure and after a second signal, which
// exits at once without saving sessions.
//
// The program is package internal/app; this package stays at the module
// root so that go install github.com/shardtop/shardtop@latest builds it.
package main

import (
	"os"

	"github.com/shardtop/shardtop/internal/app"
)

// version is set at link time: go build -ldflags "-X main.version=v1.2.3".
// Without it the module version from the build info is used.
var version string

func main() {
	os.Exit(app.Run(version, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
