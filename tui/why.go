package tui

import (
	"strconv"

	"github.com/charmbracelet/bubbles/key"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// whyNot says why binding b does not apply now (normal mode), for the
// status line when it is pressed anyway.
func (m *Model) whyNot(b *key.Binding) string {
	k := &m.keys
	switch b {
	case &k.Open:
		return m.shardWhyNot(opOpen)
	case &k.Close:
		return m.shardWhyNot(opClose)
	case &k.Resume:
		return m.shardWhyNot(opResume)
	case &k.Restart:
		return m.shardWhyNot(opRestart)
	case &k.Split:
		return m.shardWhyNot(opSplit)
	case &k.Reshard:
		return m.reshardWhyNot()
	case &k.ClearFilter:
		if m.detailOpen {
			return "not in the detail view (esc goes back to the list)"
		}
		return "no filter is set"
	case &k.Filter, &k.SortNext, &k.SortReverse:
		if m.detailOpen {
			return "not in the detail view (enter or esc goes back to the list)"
		}
	case &k.Detail:
		return "no shard is selected"
	case &k.Back:
		return "not in a detail view (enter opens the selected shard's)"
	case &k.Confirm, &k.Cancel:
		return "no question to answer (s and R ask one)"
	case &k.Apply:
		return "no filter is being edited (/ starts one)"
	}
	return "does not apply now"
}

// shardWhyNot says why action o does not apply to the selected shard.
func (m *Model) shardWhyNot(o op) string {
	info := m.selected()
	if info == nil {
		return "no shard is selected"
	}
	shard := "shard " + info.Key.String()
	switch {
	case m.snap.Resharding:
		return "a re-shard is running; shard actions wait until it ends"
	case m.busyShard(info.Key):
		return "an action on " + shard + " is still running"
	case info.Busy:
		return shard + " is busy: a close, restart or split is under way on it"
	case info.Role == manager.RoleJoining:
		return shard + " is joining in a split or re-shard that is still running"
	case info.Role == manager.RoleRetiring:
		return shard + " is retiring: a split or re-shard is replacing it"
	}
	state := info.State.String()
	stopped := info.State == gateway.StateClosed || info.State == gateway.StateFailed
	switch o {
	case opOpen:
		return shard + " is " + state + "; open is for a stopped (closed or failed) shard"
	case opClose:
		return shard + " is already " + state + " (o opens it)"
	case opResume:
		if stopped {
			return shard + " has no saved session to resume; o opens it with a new identify"
		}
		return shard + " is " + state + "; resume is for a stopped shard with a saved session"
	case opRestart:
		return shard + " is " + state + "; restart is for a running shard (o opens a stopped one)"
	}
	return opNames[o].verb + " does not apply to " + shard + " now"
}

// reshardWhyNot says why R does not apply, in the order canReshard checks.
func (m *Model) reshardWhyNot() string {
	sn := &m.snap
	switch {
	case sn.Resharding || m.running(opReshard):
		return "a re-shard is already running"
	case !sn.CanReshard:
		return "this process runs only some of the bot's shards (shard_ids); a re-shard needs all of them"
	case len(sn.Shards) == 0:
		return "no shards yet"
	}
	for i := range sn.Shards {
		switch si := &sn.Shards[i]; {
		case si.Role != manager.RoleActive:
			return "a split is running; re-shard when it ends"
		case si.Busy:
			return "an action is under way on shard " + si.Key.String() + "; re-shard when it ends"
		}
	}
	return "the bot already runs Discord's recommended " + strconv.Itoa(sn.RecommendedShards) + " shards"
}
