package tui

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/shardtop/shardtop/gateway"
	"github.com/shardtop/shardtop/manager"
)

// filter selects shards. Terms are separated by spaces or commas:
//
//	3        shard ID 3 (any count)
//	3/16     shard 3 of count 16
//	10-20    IDs 10 to 20
//	ready    state ready (a prefix works: "recon")
//	joining  role joining (also active, retiring)
//	node:n2  run by node n2, in a cluster (the name whole, any case)
//	!term    not term
//
// A shard matches if it matches any ID term (when there are some), any
// state or role term (when there are some) and any node term (when there
// are some), and none of the negated terms.
type filter struct {
	text   string
	ids    []idTerm
	states []stateTerm
	nodes  []string
	not    []term
}

type idTerm struct{ lo, hi, count int } // count 0: any

type stateTerm struct {
	states uint16 // bit per gateway.State
	roles  uint8  // bit per manager.Role
}

type term struct {
	id    *idTerm
	state *stateTerm
	node  *string
}

// nodePrefix starts a node term.
const nodePrefix = "node:"

var stateNames = func() []string {
	var names []string
	for s := gateway.StateIdle; s <= gateway.StateFailed; s++ {
		names = append(names, s.String())
	}
	return names
}()

var roleNames = []string{manager.RoleActive.String(), manager.RoleJoining.String(), manager.RoleRetiring.String()}

// parseFilter parses the filter text; "" matches everything.
func parseFilter(text string) (filter, error) {
	f := filter{text: strings.TrimSpace(text)}
	for _, word := range strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == ',' }) {
		neg := strings.HasPrefix(word, "!")
		body := strings.TrimPrefix(word, "!")
		t, err := parseTerm(body)
		if err != nil {
			return filter{}, fmt.Errorf("filter %q: %w", word, err)
		}
		switch {
		case neg:
			f.not = append(f.not, t)
		case t.id != nil:
			f.ids = append(f.ids, *t.id)
		case t.node != nil:
			f.nodes = append(f.nodes, *t.node)
		default:
			f.states = append(f.states, *t.state)
		}
	}
	return f, nil
}

func parseTerm(s string) (term, error) {
	if s == "" {
		return term{}, fmt.Errorf("empty term")
	}
	if s[0] >= '0' && s[0] <= '9' {
		id, err := parseIDTerm(s)
		if err != nil {
			return term{}, err
		}
		return term{id: &id}, nil
	}
	if len(s) >= len(nodePrefix) && strings.EqualFold(s[:len(nodePrefix)], nodePrefix) {
		name := s[len(nodePrefix):]
		if name == "" {
			return term{}, fmt.Errorf("want a node name after %q", nodePrefix)
		}
		return term{node: &name}, nil
	}
	var st stateTerm
	lower := strings.ToLower(s)
	for i, name := range stateNames {
		if strings.HasPrefix(name, lower) {
			st.states |= 1 << i
		}
	}
	for i, name := range roleNames {
		if strings.HasPrefix(name, lower) {
			st.roles |= 1 << i
		}
	}
	if st.states == 0 && st.roles == 0 {
		return term{}, fmt.Errorf("not a shard ID, range, node:name, state (%s) or role (%s)",
			strings.Join(stateNames, ", "), strings.Join(roleNames, ", "))
	}
	return term{state: &st}, nil
}

func parseIDTerm(s string) (idTerm, error) {
	if a, b, ok := strings.Cut(s, "/"); ok {
		id, err1 := strconv.Atoi(a)
		count, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || id < 0 || count < 1 || id >= count {
			return idTerm{}, fmt.Errorf("want id/count with 0 <= id < count")
		}
		return idTerm{lo: id, hi: id, count: count}, nil
	}
	if a, b, ok := strings.Cut(s, "-"); ok {
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || lo < 0 || hi < lo {
			return idTerm{}, fmt.Errorf("want a range lo-hi with 0 <= lo <= hi")
		}
		return idTerm{lo: lo, hi: hi}, nil
	}
	id, err := strconv.Atoi(s)
	if err != nil || id < 0 {
		return idTerm{}, fmt.Errorf("want a shard ID")
	}
	return idTerm{lo: id, hi: id}, nil
}

// empty reports whether the filter matches everything.
func (f *filter) empty() bool {
	return len(f.ids) == 0 && len(f.states) == 0 && len(f.nodes) == 0 && len(f.not) == 0
}

// nodeMatch reports whether info runs on the node named name.
func nodeMatch(name string, info *manager.ShardInfo) bool {
	return info.Node != "" && strings.EqualFold(name, info.Node)
}

func (t *idTerm) match(info *manager.ShardInfo) bool {
	return info.Key.ID >= t.lo && info.Key.ID <= t.hi && (t.count == 0 || t.count == info.Key.Count)
}

func (t *stateTerm) match(info *manager.ShardInfo) bool {
	return t.states&(1<<info.State) != 0 || t.roles&(1<<info.Role) != 0
}

func (t *term) match(info *manager.ShardInfo) bool {
	switch {
	case t.id != nil:
		return t.id.match(info)
	case t.node != nil:
		return nodeMatch(*t.node, info)
	}
	return t.state.match(info)
}

// match reports whether info passes the filter.
func (f *filter) match(info *manager.ShardInfo) bool {
	if len(f.ids) > 0 {
		ok := false
		for i := range f.ids {
			if f.ids[i].match(info) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(f.states) > 0 {
		ok := false
		for i := range f.states {
			if f.states[i].match(info) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(f.nodes) > 0 {
		ok := false
		for _, name := range f.nodes {
			if nodeMatch(name, info) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for i := range f.not {
		if f.not[i].match(info) {
			return false
		}
	}
	return true
}
