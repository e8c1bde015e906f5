package bff

import (
	"encoding/json"
	"testing"
)

// FuzzParseLogoutClaims: parseLogoutClaims never panics, and whatever it
// accepts, encoding/json reads the same way: valid JSON, one object, and
// the same sid, azp, nonce and event (it refuses duplicates, so the
// standard library's last-one-wins cannot disagree with it).
func FuzzParseLogoutClaims(f *testing.F) {
	for _, seed := range []string{
		// A valid logout token's claims.
		`{"iss":"https://as","aud":"c","iat":1,"jti":"j","sid":"s","events":{"http://schemas.openid.net/event/backchannel-logout":{}}}`,
		// sub only, the event with members, other events beside it.
		`{"sub":"u","events":{"x":1,"http://schemas.openid.net/event/backchannel-logout":{"a":[1,{"b":null}]}}}`,
		// An ID token: a nonce, no events.
		`{"sub":"u","sid":"s","nonce":"n"}`,
		// nonce null is still a nonce.
		`{"nonce":null}`,
		// Duplicates: sid, events, the event member.
		`{"sid":"a","sid":"b"}`,
		`{"events":{},"events":{}}`,
		`{"events":{"http://schemas.openid.net/event/backchannel-logout":{},"http://schemas.openid.net/event/backchannel-logout":{}}}`,
		// A name spelled with an escape is the same name.
		`{"sid":"a","s\u0069d":"b"}`,
		// Wrong types.
		`{"sid":1}`, `{"sid":null}`, `{"azp":[]}`, `{"events":[]}`,
		`{"events":{"http://schemas.openid.net/event/backchannel-logout":"{}"}}`,
		// Not one object.
		`[]`, `{}{}`, `{"sid":"a",}`, `{"sid":"\ud800"}`, "{\"sid\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := parseLogoutClaims(payload)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", err, payload)
		}
		str := func(name string, got *string) {
			raw, ok := m[name]
			if !ok {
				if got != nil {
					t.Fatalf("%s = %q, but encoding/json sees none in %q", name, *got, payload)
				}
				return
			}
			var want string
			if err := json.Unmarshal(raw, &want); err != nil || got == nil || *got != want {
				t.Fatalf("%s: got %v, encoding/json reads %s, in %q", name, got, raw, payload)
			}
		}
		str("sid", c.SID)
		str("azp", c.AZP)
		if _, ok := m["nonce"]; ok != c.Nonce {
			t.Fatalf("nonce = %v, encoding/json sees one: %v, in %q", c.Nonce, ok, payload)
		}
		event := false
		if raw, ok := m["events"]; ok {
			var events map[string]json.RawMessage
			if err := json.Unmarshal(raw, &events); err != nil {
				t.Fatalf("events accepted but not an object for encoding/json: %q", payload)
			}
			var obj map[string]json.RawMessage
			if v, ok := events[backchannelEvent]; ok && json.Unmarshal(v, &obj) == nil && obj != nil {
				event = true
			}
		}
		if event != c.Event {
			t.Fatalf("event = %v, encoding/json reads %v, in %q", c.Event, event, payload)
		}
	})
}

// FuzzSessionIdentity: sessionIdentity never panics on any claims.
func FuzzSessionIdentity(f *testing.F) {
	f.Add([]byte(`{"sub":"u","sid":"s"}`))
	f.Add([]byte(`{"sub":1,"sid":{"a":"b"}}`))
	f.Add([]byte(`{"sub":"\ud800"}`))
	f.Fuzz(func(t *testing.T, claims []byte) {
		sub, sid := sessionIdentity(claims)
		_, _ = sub, sid
	})
}
