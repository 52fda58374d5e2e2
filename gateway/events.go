package gateway

// knownEventNames are Discord's dispatch event names, in the order of the
// shard's per-name counters (see Shard.EventCounts).
var knownEventNames = [...]string{
	"READY", "RESUMED", "APPLICATION_COMMAND_PERMISSIONS_UPDATE",
	"AUTO_MODERATION_RULE_CREATE", "AUTO_MODERATION_RULE_UPDATE", "AUTO_MODERATION_RULE_DELETE", "AUTO_MODERATION_ACTION_EXECUTION",
	"CHANNEL_CREATE", "CHANNEL_UPDATE", "CHANNEL_DELETE", "CHANNEL_PINS_UPDATE",
	"THREAD_CREATE", "THREAD_UPDATE", "THREAD_DELETE", "THREAD_LIST_SYNC", "THREAD_MEMBER_UPDATE", "THREAD_MEMBERS_UPDATE",
	"ENTITLEMENT_CREATE", "ENTITLEMENT_UPDATE", "ENTITLEMENT_DELETE",
	"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE", "GUILD_AUDIT_LOG_ENTRY_CREATE", "GUILD_BAN_ADD", "GUILD_BAN_REMOVE",
	"GUILD_EMOJIS_UPDATE", "GUILD_STICKERS_UPDATE", "GUILD_INTEGRATIONS_UPDATE",
	"GUILD_MEMBER_ADD", "GUILD_MEMBER_REMOVE", "GUILD_MEMBER_UPDATE", "GUILD_MEMBERS_CHUNK",
	"GUILD_ROLE_CREATE", "GUILD_ROLE_UPDATE", "GUILD_ROLE_DELETE",
	"GUILD_SCHEDULED_EVENT_CREATE", "GUILD_SCHEDULED_EVENT_UPDATE", "GUILD_SCHEDULED_EVENT_DELETE",
	"GUILD_SCHEDULED_EVENT_USER_ADD", "GUILD_SCHEDULED_EVENT_USER_REMOVE",
	"GUILD_SOUNDBOARD_SOUND_CREATE", "GUILD_SOUNDBOARD_SOUND_UPDATE", "GUILD_SOUNDBOARD_SOUND_DELETE", "GUILD_SOUNDBOARD_SOUNDS_UPDATE", "SOUNDBOARD_SOUNDS",
	"INTEGRATION_CREATE", "INTEGRATION_UPDATE", "INTEGRATION_DELETE", "INTERACTION_CREATE",
	"INVITE_CREATE", "INVITE_DELETE",
	"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK",
	"MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE", "MESSAGE_REACTION_REMOVE_ALL", "MESSAGE_REACTION_REMOVE_EMOJI",
	"MESSAGE_POLL_VOTE_ADD", "MESSAGE_POLL_VOTE_REMOVE",
	"PRESENCE_UPDATE", "STAGE_INSTANCE_CREATE", "STAGE_INSTANCE_UPDATE", "STAGE_INSTANCE_DELETE",
	"SUBSCRIPTION_CREATE", "SUBSCRIPTION_UPDATE", "SUBSCRIPTION_DELETE",
	"TYPING_START", "USER_UPDATE", "VOICE_CHANNEL_EFFECT_SEND", "VOICE_STATE_UPDATE", "VOICE_SERVER_UPDATE", "WEBHOOKS_UPDATE",
}

// OtherEvents is the name EventCounts gives the dispatches whose name is
// not one of Discord's known events.
const OtherEvents = "other"

// otherEvent is the counter of the dispatches of unknown names.
const otherEvent = len(knownEventNames)

// knownEvent is a known name, interned, and the index of its counter.
type knownEvent struct {
	name string
	idx  int
}

// knownEvents indexes knownEventNames. Looking one up with a []byte key
// does not allocate, so known names reach the handler interned.
var knownEvents = func() map[string]knownEvent {
	m := make(map[string]knownEvent, len(knownEventNames))
	for i, n := range knownEventNames {
		m[n] = knownEvent{n, i}
	}
	return m
}()

// eventName returns the interned name for known events (no allocation) and a
// fresh string otherwise, with the index of its counter (otherEvent for an
// unknown name).
func eventName(t []byte) (string, int) {
	if k, ok := knownEvents[string(t)]; ok {
		return k.name, k.idx
	}
	return string(t), otherEvent
}

// EventCount is how many dispatches of one name a shard received.
type EventCount struct {
	// Name is the event name, or OtherEvents for every name Discord did
	// not document.
	Name  string
	Count uint64
}

// EventCounts appends to dst the shard's dispatch counts by event name,
// the names received at least once, in a fixed order (OtherEvents last),
// and returns it. The counters are atomics bumped by the connection's own
// goroutine; reading them takes no lock and, with room in dst, allocates
// nothing.
func (s *Shard) EventCounts(dst []EventCount) []EventCount {
	for i := range s.byName {
		if n := s.byName[i].Load(); n > 0 {
			name := OtherEvents
			if i < len(knownEventNames) {
				name = knownEventNames[i]
			}
			dst = append(dst, EventCount{Name: name, Count: n})
		}
	}
	return dst
}
