// Package secret keeps the bot token out of everything that prints it:
// fmt, log/slog, encoding/json, encoding.TextMarshaler users, and errors
// built from any of them.
package secret

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
)

// redacted is what a non-empty Token shows instead of its value.
const redacted = "[REDACTED]"

// Token is a secret string, the bot token. Every way of showing it (String,
// GoString, Format for every verb, LogValue, MarshalJSON, MarshalText)
// gives "[REDACTED]", or "" for an empty Token so that a missing token
// still shows as missing; only Reveal returns the value. The zero Token is
// empty.
//
// The value sits behind a pointer: fmt prints an unexported struct field
// by reflection, without calling its methods, so a Token held in one shows
// as an address, never as the text.
//
// The client's packages (config, manager, gateway) share this type;
// discordsim keeps its own redaction on purpose: the simulator shares no
// code with the client, so that a misreading of the protocol cannot hide
// by being mirrored in both.
type Token struct{ p *string }

// New returns a Token holding s.
func New(s string) Token {
	if s == "" {
		return Token{} // one empty Token, so that empty ones are equal
	}
	return Token{p: &s}
}

// Reveal returns the token itself, for the one place that sends it.
func (t Token) Reveal() string {
	if t.p == nil {
		return ""
	}
	return *t.p
}

// shown is what every printing method shows.
func (t Token) shown() string {
	if t.p == nil || *t.p == "" {
		return ""
	}
	return redacted
}

// String shows the token redacted.
func (t Token) String() string { return t.shown() }

// GoString is String: %#v never shows the token.
func (t Token) GoString() string { return t.shown() }

// Format shows the token redacted whatever the verb and flags (%x or %q
// would otherwise format the text itself).
func (t Token) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, t.shown()) }

// LogValue logs the token redacted.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.shown()) }

// MarshalJSON encodes the token redacted, as a JSON string.
func (t Token) MarshalJSON() ([]byte, error) { return json.Marshal(t.shown()) }

// MarshalText encodes the token redacted, for encoders of text (TOML, XML
// attributes, JSON map keys).
func (t Token) MarshalText() ([]byte, error) { return []byte(t.shown()), nil }

// UnmarshalTOML sets the token from a TOML string, for the config file
// (github.com/BurntSushi/toml calls it; the interface needs no import). It
// refuses any other type, as a string field would, where a TextUnmarshaler
// would take token = 123 as the text "123".
func (t *Token) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a string, got a %T", v)
	}
	*t = New(s)
	return nil
}
