// Package tui is shardtop's terminal UI: a Bubble Tea program over a shard
// manager.
//
// One root Model holds all state. It pulls the manager's snapshot on a tick
// (SnapshotInto a reused buffer) instead of receiving a message per event,
// drains lifecycle events from a subscription into a ring buffer on the same
// tick, and runs actions as tea.Cmds whose result goes to a status line.
// The header, shard table, the selected shard's detail, identify backlog,
// log pane, status line and help are render-only components: they draw the
// model's state into a given size and hold no state of their own. The
// table takes the rows it needs and the log the rest of the height; the
// shard table renders only its visible rows, so ten thousand shards scroll
// as cheaply as ten.
package tui
