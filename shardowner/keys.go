package shardowner

import (
	"cmp"
	"slices"

	"github.com/shardtop/shardtop/shardlease"
)

// BaseID returns the shard ID at count base whose guilds key's are part of:
// key.ID mod base, when key.Count is a multiple of base (a shard of base
// count itself, or one of the shards a split made of it). A key of any
// other count is no shard of a mode of base count: ok is false.
//
// Ownership follows it: a key belongs to whichever node owns its base ID,
// so the shards a split makes stay with the owner of the shard split (in
// Balanced mode, Targets(nodes, base)[BaseID]; in Fixed mode, the node
// given that ID).
func BaseID(key shardlease.Key, base int) (id int, ok bool) {
	if base < 1 || key.Count < base || key.Count%base != 0 || key.ID < 0 || key.ID >= key.Count {
		return 0, false
	}
	return key.ID % base, true
}

// descends reports whether d is one of the shards a split of a makes
// (directly or after further splits): a larger count, a multiple of a's,
// and d's guilds a part of a's.
func descends(d, a shardlease.Key) bool {
	return d.Count > a.Count && d.Count%a.Count == 0 && d.ID%a.Count == a.ID
}

// standing says what a key is in the layout the records make.
type standing uint8

const (
	// standingShard: a shard to run (its record, or a base key with no
	// record and nothing split from it).
	standingShard standing = iota
	// standingVanished: a base key with no record whose guilds records of
	// larger counts hold: a split retired it. Not a shard to create.
	standingVanished
	// standingSuperseded: a record whose guilds the records of larger
	// counts cover entirely: a split is done (or was, when its node died
	// before deleting it). Its target deletes it once free or expired.
	standingSuperseded
	// standingStray: a record split from a record that is not superseded:
	// a split that never completed (its node died during it). Its target
	// deletes it once free or expired; the parent keeps the guilds.
	standingStray
)

// classify says what key is among recs, the records of counts multiple of
// the mode's base (at most one per key).
func classify(key shardlease.Key, recs map[shardlease.Key]shardlease.Record) standing {
	_, exists := recs[key]
	if !exists {
		for k := range recs {
			if descends(k, key) {
				return standingVanished
			}
		}
		return standingShard
	}
	if covered(key, recs) {
		return standingSuperseded
	}
	for k := range recs {
		if descends(key, k) && !covered(k, recs) {
			return standingStray
		}
	}
	return standingShard
}

// covered reports whether the records of keys split from a hold every
// guild of a: for each residue r ≡ a.ID (mod a.Count) below the largest of
// their counts, one of them has r ≡ ID (mod Count). Descendants whose
// counts do not all divide the largest do not cover it.
func covered(a shardlease.Key, recs map[shardlease.Key]shardlease.Record) bool {
	var ds []shardlease.Key
	top := 0
	for k := range recs {
		if descends(k, a) {
			ds = append(ds, k)
			top = max(top, k.Count)
		}
	}
	if len(ds) == 0 {
		return false
	}
	for _, d := range ds {
		if top%d.Count != 0 {
			return false
		}
	}
	for r := a.ID; r < top; r += a.Count {
		if !slices.ContainsFunc(ds, func(d shardlease.Key) bool { return r%d.Count == d.ID }) {
			return false
		}
	}
	return true
}

// compareKeys orders keys by count, then ID.
func compareKeys(a, b shardlease.Key) int {
	return cmp.Or(cmp.Compare(a.Count, b.Count), cmp.Compare(a.ID, b.ID))
}

// liveAncestor returns the record key was split from that a live owner
// holds (or that is malformed, which counts as held), if any.
func liveAncestor(key shardlease.Key, recs map[shardlease.Key]shardlease.Record) (shardlease.Key, bool) {
	for k, rec := range recs {
		if descends(key, k) && (rec.Owner != "" && !rec.Expired || rec.Err != nil) {
			return k, true
		}
	}
	return shardlease.Key{}, false
}
