package gateway

import "testing"

func TestDispatchGuildID(t *testing.T) {
	cases := []struct {
		data  string
		want  string
		ok    bool
		event string
	}{
		{`{"id":"41771983423143937","name":"g","channels":[{"id":"1","guild_id":"9"}]}`, "41771983423143937", true, "GUILD_CREATE"},
		{`{"id":"41771983423143937","unavailable":true}`, "41771983423143937", true, "GUILD_DELETE"},
		{`{"guild_id":"5","id":"41771983423143937"}`, "41771983423143937", true, "GUILD_UPDATE"},
		{`{"guild_id":"5","id":"6"}`, "5", true, "GUILD_ROLE_CREATE"},
		{`{"guild_id":"81384788765712384","id":"1"}`, "81384788765712384", true, "MESSAGE_CREATE"},
		{`{"id":"1","author":{"guild_id":"9"},"guild_id":"42"}`, "42", true, "MESSAGE_CREATE"}, // top level only
		{`{"id":"1","author":{"guild_id":"9"}}`, "", false, "MESSAGE_CREATE"},
		{`{"guild_id":null}`, "", false, "MESSAGE_CREATE"},
		{`{"guild_id":""}`, "", false, "MESSAGE_CREATE"},
		{`{"guild_id":12}`, "", false, "MESSAGE_CREATE"},
		{`{"guild_id":"a\/b"}`, "a/b", true, "MESSAGE_CREATE"},
		{`[1,2]`, "", false, "MESSAGE_CREATE"},
	}
	for _, c := range cases {
		d := Dispatch{Event: c.event, Data: []byte(c.data)}
		got, ok := d.GuildID()
		if got != c.want || ok != c.ok {
			t.Errorf("GuildID(%s) = %q, %v; want %q, %v", c.data, got, ok, c.want, c.ok)
		}
		b, ok := d.AppendGuildID([]byte("x:"))
		if string(b) != "x:"+c.want || ok != c.ok {
			t.Errorf("AppendGuildID(%s) = %q, %v; want %q, %v", c.data, b, ok, "x:"+c.want, c.ok)
		}
	}
	d := Dispatch{Data: []byte(`{"content":"hi","guild_id":"81384788765712384"}`)}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf, _ = d.AppendGuildID(buf[:0]) }); n != 0 {
		t.Errorf("AppendGuildID allocates %v times", n)
	}
}
