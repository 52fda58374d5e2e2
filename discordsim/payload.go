package discordsim

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// discordEpochMs is the first millisecond of 2015, Discord's snowflake epoch.
const discordEpochMs = 1420070400000

// guildBaseTimestamp is the snowflake timestamp (ms since the Discord epoch)
// of guild 0. Guild i has timestamp guildBaseTimestamp+i, so (id>>22)%count
// spreads the guilds evenly over any shard count.
const guildBaseTimestamp = 200_000_000_000

// botUserID is the simulated bot's user and application ID.
const botUserID uint64 = 1_100_000_000_000_000_001

// GuildID returns the snowflake of guild i (0 <= i < Config.Guilds).
func GuildID(i int) uint64 {
	return uint64(guildBaseTimestamp+i)<<22 | uint64(i&0xfff)
}

// GuildShard returns Discord's shard for a guild: (guild_id >> 22) % count.
func GuildShard(guildID uint64, count int) int {
	return int((guildID >> 22) % uint64(count))
}

// guildsFor lists the guild indexes that shard [id,count] holds.
func guildsFor(total, id, count int) []int {
	var out []int
	// guild i is on shard (guildBaseTimestamp+i)%count: step through them.
	first := ((id-guildBaseTimestamp%count)%count + count) % count
	for i := first; i < total; i += count {
		out = append(out, i)
	}
	return out
}

// guildCountFor is len(guildsFor(...)) without building the list.
func guildCountFor(total, id, count int) int {
	first := ((id-guildBaseTimestamp%count)%count + count) % count
	if first >= total {
		return 0
	}
	return (total-first-1)/count + 1
}

// dispatchBody is an immutable, pre-built dispatch: rendering it with a seq
// (and, for messages, a fresh ID) allocates nothing. Bodies are shared by the
// replay buffers that point at them.
type dispatchBody struct {
	prefix  []byte // `{"t":"NAME","s":`
	message bool   // d is id, channel_id, guild_id (from the entry) + body
	body    []byte // the rest of d (or all of d when !message)
}

func newBody(event string, body []byte) *dispatchBody {
	return &dispatchBody{prefix: []byte(`{"t":"` + event + `","s":`), body: body}
}

// entry is one dispatch of a session: what the replay buffer holds.
type entry struct {
	seq   int64
	id    uint64 // message snowflake (messages only)
	guild uint64 // guild snowflake, 0 for a DM (messages only)
	b     *dispatchBody
}

// appendDispatch renders e as a gateway payload in Discord's key order.
func appendDispatch(dst []byte, e entry) []byte {
	dst = append(dst, e.b.prefix...)
	dst = strconv.AppendInt(dst, e.seq, 10)
	dst = append(dst, `,"op":0,"d":`...)
	if e.b.message {
		dst = append(dst, `{"id":"`...)
		dst = strconv.AppendUint(dst, e.id, 10)
		dst = append(dst, `","channel_id":"`...)
		if e.guild != 0 {
			dst = strconv.AppendUint(dst, e.guild+1, 10)
			dst = append(dst, `","guild_id":"`...)
			dst = strconv.AppendUint(dst, e.guild, 10)
		} else {
			dst = strconv.AppendUint(dst, dmChannelID, 10)
		}
		dst = append(dst, '"')
	}
	dst = append(dst, e.b.body...)
	return append(dst, '}')
}

// opFrame renders a non-dispatch payload.
func opFrame(op int, d string) []byte {
	return []byte(`{"t":null,"s":null,"op":` + strconv.Itoa(op) + `,"d":` + d + `}`)
}

var (
	frameACK          = opFrame(11, "null")
	frameReconnect    = opFrame(7, "null")
	frameInvalidTrue  = opFrame(9, "true")
	frameInvalidFalse = opFrame(9, "false")
	frameHeartbeat    = opFrame(1, "null")
	resumedBody       = newBody("RESUMED", []byte(`{"_trace":["[\"discordsim\",{\"micros\":0}]"]}`))
)

func helloFrame(interval time.Duration) []byte {
	return opFrame(10, `{"heartbeat_interval":`+strconv.FormatInt(interval.Milliseconds(), 10)+
		`,"_trace":["[\"discordsim-gateway\",{\"micros\":0}]"]}`)
}

// botUserJSON is the simulated bot user, as READY's user and GET
// /users/@me give it (one source, so the two can never disagree).
var botUserJSON = fmt.Sprintf(`{"id":"%d","username":"shardtop-sim","discriminator":"0","global_name":null,`+
	`"avatar":null,"bot":true,"system":false,"mfa_enabled":false,"banner":null,"accent_color":null,"locale":"en-US",`+
	`"verified":true,"email":null,"flags":0,"premium_type":0,"public_flags":0,"avatar_decoration_data":null}`, botUserID)

// readyBody builds READY's d for a new session.
func readyBody(sessionID, resumeURL string, shardID, shardCount int, guilds []int) *dispatchBody {
	var b strings.Builder
	b.Grow(600 + 45*len(guilds))
	fmt.Fprintf(&b, `{"v":10,"user_settings":{},"user":%s,`+
		`"session_type":"normal","session_id":"%s","resume_gateway_url":"%s","relationships":[],"private_channels":[],`+
		`"presences":[],"guilds":[`, botUserJSON, sessionID, resumeURL)
	for i, g := range guilds {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"unavailable":true,"id":"%d"}`, GuildID(g))
	}
	fmt.Fprintf(&b, `],"guild_join_requests":[],"geo_ordered_rtc_regions":["rotterdam","frankfurt"],"auth":{},`+
		`"application":{"id":"%d","flags":565248},"shard":[%d,%d],"_trace":["[\"discordsim\",{\"micros\":0}]"]}`,
		botUserID, shardID, shardCount)
	return newBody("READY", []byte(b.String()))
}

// guildCreateBody builds GUILD_CREATE's d for guild g (a realistic small guild).
func guildCreateBody(g int) *dispatchBody {
	id := GuildID(g)
	body := fmt.Sprintf(`{"id":"%d","name":"Sim Guild %d","icon":null,"owner_id":"%d","member_count":%d,"large":false,`+
		`"unavailable":false,"joined_at":"2024-03-01T12:00:00.000000+00:00","channels":[{"id":"%d","type":0,`+
		`"name":"general","position":0,"parent_id":null,"topic":null,"nsfw":false},{"id":"%d","type":2,"name":"Voice",`+
		`"position":1,"bitrate":64000,"user_limit":0}],"roles":[{"id":"%d","name":"@everyone","permissions":"2248473465835073",`+
		`"position":0,"color":0,"hoist":false,"managed":false,"mentionable":false}],"members":[],"presences":[],`+
		`"voice_states":[],"threads":[],"stage_instances":[],"guild_scheduled_events":[],"features":[],"emojis":[],`+
		`"stickers":[],"premium_tier":0,"preferred_locale":"en-US","system_channel_id":"%d","verification_level":1,`+
		`"nsfw_level":0,"max_members":500000,"description":null,"banner":null}`,
		id, g, 200_000_000_000_000_000+uint64(g), 5+g%9000, id+1, id+2, id, id+1)
	return newBody("GUILD_CREATE", []byte(body))
}

// guildCache holds GUILD_CREATE bodies, built on first use and shared.
type guildCache struct {
	mu     sync.Mutex
	bodies map[int]*dispatchBody
}

func (gc *guildCache) get(g int) *dispatchBody {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if b, ok := gc.bodies[g]; ok {
		return b
	}
	if gc.bodies == nil {
		gc.bodies = make(map[int]*dispatchBody)
	}
	b := guildCreateBody(g)
	gc.bodies[g] = b
	return b
}

// messagePoolSize is how many different MESSAGE_CREATE bodies exist: far
// more than a 32 KiB compression window holds, so zlib/zstd ratios are
// realistic rather than flattered by repeats.
const messagePoolSize = 256

var vocabulary = strings.Fields(`lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor
incididunt ut labore et dolore magna aliqua shard gateway heartbeat resume identify ready guild channel message
embed zstd zlib stream latency bucket session replay sequence dispatch hello the a and of to in is it that was for
on are with as his they be at one have this from or had by hot word but what some we can out other were all there
when up use your how said an each she which their time if will way about many then them write would like so these
her long make thing see him two has look more day could go come did number sound no most people my over know water
than call first who may down side been now find any new work part take get place made live where after back little
only round man year came show every good me give our under name very through just form sentence great think say
help low line differ turn cause much mean before move right boy old too same tell does set three want air well also`)

// messagePool holds the shared MESSAGE_CREATE tails: everything in d after
// id, channel_id and guild_id, which rendering splices in.
type messagePool struct {
	guild []*dispatchBody // with a member object
	dm    []*dispatchBody // without
}

var sharedMessages = sync.OnceValue(func() *messagePool {
	rng := rand.New(rand.NewPCG(42, 42)) // fixed: the same bodies every run
	p := &messagePool{}
	for v := 0; v < messagePoolSize; v++ {
		p.guild = append(p.guild, messageTail(rng, v, true))
		if v < messagePoolSize/8 {
			p.dm = append(p.dm, messageTail(rng, v, false))
		}
	}
	return p
})

func messageTail(rng *rand.Rand, v int, inGuild bool) *dispatchBody {
	var content strings.Builder
	words := 25 + rng.IntN(45)
	for w := 0; w < words; w++ {
		if w > 0 {
			content.WriteByte(' ')
		}
		content.WriteString(vocabulary[rng.IntN(len(vocabulary))])
		if rng.IntN(12) == 0 {
			fmt.Fprintf(&content, " %d", rng.IntN(100000))
		}
	}
	user := 300_000_000_000_000_000 + rng.Uint64N(100_000_000_000_000_000)
	member := ""
	if inGuild {
		member = fmt.Sprintf(`,"member":{"roles":["%d"],"premium_since":null,"pending":false,"nick":null,`+
			`"mute":false,"joined_at":"2024-05-%02dT10:%02d:%02d.%06d+00:00","flags":0,"deaf":false,`+
			`"communication_disabled_until":null,"avatar":null}`,
			900_000_000_000_000_000+rng.Uint64N(1_000_000), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(1000000))
	}
	body := fmt.Sprintf(`,"type":0,"author":{"id":"%d","username":"user%d","global_name":"User %d",`+
		`"avatar":"%016x%016x","discriminator":"0","public_flags":%d,"flags":0,"bot":false,"banner":null,`+
		`"accent_color":null,"avatar_decoration_data":null}%s,"content":"%s","timestamp":"2025-01-%02dT%02d:%02d:%02d.%06d+00:00",`+
		`"edited_timestamp":null,"tts":false,"mention_everyone":false,"mentions":[],"mention_roles":[],"attachments":[],`+
		`"embeds":[{"type":"rich","title":"Report %d","description":"%s","color":%d,"fields":[{"name":"events",`+
		`"value":"%d","inline":true}]}],"pinned":false,"flags":0,"components":[],"nonce":"%d"}`,
		user, rng.IntN(1_000_000), v, rng.Uint64(), rng.Uint64(), rng.IntN(1<<20), member, content.String(),
		1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1000000),
		rng.IntN(10000), vocabulary[rng.IntN(len(vocabulary))]+" "+vocabulary[rng.IntN(len(vocabulary))],
		rng.IntN(1<<24), rng.IntN(1000000), 1_300_000_000_000_000_000+rng.Uint64N(1<<40))
	return &dispatchBody{prefix: []byte(`{"t":"MESSAGE_CREATE","s":`), message: true, body: []byte(body)}
}

// dmChannelID is the DM channel of messages without a guild.
const dmChannelID uint64 = 1_250_000_000_000_000_000
