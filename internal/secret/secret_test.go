package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

const value = "MTIzNDU2.token-never-shown.abcdef"

// holder keeps a Token the ways the client's types do: in an exported
// field, in an unexported one (shard, manager), and behind a pointer.
type holder struct {
	Token  Token
	token  Token
	ptr    *Token
	Nested struct{ T Token }
}

func newHolder() holder {
	t := New(value)
	h := holder{Token: t, token: t, ptr: &t}
	h.Nested.T = t
	return h
}

// printed is every way the tests show t and a holder of it.
func printed(t *testing.T, tok Token) map[string]string {
	t.Helper()
	h := newHolder()
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s", "%-20v", "% x", "%T"} {
		out[verb+" of the token"] = fmt.Sprintf(verb, tok)
		out[verb+" of a pointer to it"] = fmt.Sprintf(verb, &tok)
		out[verb+" of a struct holding it"] = fmt.Sprintf(verb, h)
		out[verb+" of a pointer to that struct"] = fmt.Sprintf(verb, &h)
		out[verb+" of a slice and a map"] = fmt.Sprintf(verb, []Token{tok}) + fmt.Sprintf(verb, map[string]Token{"k": tok})
	}
	out["fmt.Sprint"] = fmt.Sprint(tok, h, &h)
	out["fmt.Sprintln"] = fmt.Sprintln(tok, h, &h)
	out["an error wrapping it"] = fmt.Errorf("dial with %v: %w", tok, errors.New("refused")).Error()

	for name, handler := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog JSON": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		l := slog.New(handler(&b))
		l.Info("x", "token", tok, "ptr", &tok, "holder", h, "holder_ptr", &h)
		l.With("token", tok).Info("with", slog.Group("g", "token", tok))
		out[name] = b.String()
	}

	for name, v := range map[string]any{"token": tok, "pointer": &tok, "holder": h, "map key": map[Token]int{tok: 1}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal of the %s: %v", name, err)
		}
		out["json.Marshal of the "+name] = string(b)
	}
	text, err := tok.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	out["MarshalText"] = string(text)
	var tb bytes.Buffer
	if err := toml.NewEncoder(&tb).Encode(h); err != nil {
		t.Fatal(err)
	}
	out["toml encoding"] = tb.String()
	return out
}

// TestTokenNeverShown: no fmt verb, slog handler or encoder shows the
// value, held directly, behind a pointer or in a struct's exported or
// unexported field; the redaction marker shows wherever the methods run.
func TestTokenNeverShown(t *testing.T) {
	tok := New(value)
	for how, s := range printed(t, tok) {
		if strings.Contains(s, value) || strings.Contains(s, "never-shown") ||
			strings.Contains(s, fmt.Sprintf("%x", value)[:12]) || strings.Contains(s, fmt.Sprintf("%X", value)[:12]) {
			t.Errorf("%s shows the token: %s", how, s)
		}
	}
	for _, s := range []string{
		tok.String(), tok.GoString(), fmt.Sprintf("%x", tok), fmt.Sprintf("%#v", tok), fmt.Sprint(newHolder().Token),
		tok.LogValue().String(),
	} {
		if s != "[REDACTED]" {
			t.Errorf("shown as %q, want [REDACTED]", s)
		}
	}
	if b, _ := json.Marshal(tok); string(b) != `"[REDACTED]"` {
		t.Errorf("json.Marshal = %s, want \"[REDACTED]\"", b)
	}
	if got := tok.Reveal(); got != value {
		t.Errorf("Reveal() = %q, want the value", got)
	}
}

// TestEmptyToken: an empty Token shows as empty (a missing token is not a
// secret) and equals the zero Token.
func TestEmptyToken(t *testing.T) {
	var zero Token
	if New("") != zero || zero.Reveal() != "" {
		t.Errorf("New(\"\") = %#v, Reveal %q; want the zero Token", New(""), zero.Reveal())
	}
	if s := fmt.Sprintf("%v|%s|%#v", zero, zero, zero); s != "||" {
		t.Errorf("empty token printed as %q", s)
	}
	if b, _ := json.Marshal(zero); string(b) != `""` {
		t.Errorf("json.Marshal of an empty token = %s", b)
	}
}

// TestUnmarshalTOML: the config file's token is a TOML string; any other
// type is refused (a TextUnmarshaler would turn 123 into "123"), and the
// error does not quote the value.
func TestUnmarshalTOML(t *testing.T) {
	var doc struct{ Token Token }
	if _, err := toml.Decode(`token = "`+value+`"`, &doc); err != nil || doc.Token.Reveal() != value {
		t.Fatalf("decoding a string: %v, %q", err, doc.Token.Reveal())
	}
	for _, text := range []string{"token = 123456789", "token = true", "token = 1.5", "token = [\"a\"]", "[token]\na = 1"} {
		var doc struct{ Token Token }
		_, err := toml.Decode(text, &doc)
		if err == nil {
			t.Errorf("%q decoded to %q, want an error", text, doc.Token.Reveal())
			continue
		}
		if strings.Contains(err.Error(), "123456789") {
			t.Errorf("%q: the error quotes the value: %v", text, err)
		}
	}
}
