package bff

import "testing"

// TestBackchannelKeysScopedToClient: the store keys of back-channel
// logout (sid and subject indexes, the ended-sid marker, jti markers) are
// hashes of the issuer, the client and the value, so two handlers of two
// clients of one issuer that share a store never read or end each
// other's sessions, nor refuse each other's logout tokens as replays.
func TestBackchannelKeysScopedToClient(t *testing.T) {
	a := &Handler{cfg: Config{Issuer: "https://as.example", ClientID: "app-a"}}
	b := &Handler{cfg: Config{Issuer: "https://as.example", ClientID: "app-b"}}
	c := &Handler{cfg: Config{Issuer: "https://other.example", ClientID: "app-a"}}
	for name, key := range map[string]func(h *Handler) string{
		"sid index": func(h *Handler) string { return h.sidIndexKey("s1") },
		"sub index": func(h *Handler) string { return h.subIndexKey("alice") },
		"ended sid": func(h *Handler) string { return h.sidEndedKey("s1") },
		"jti":       func(h *Handler) string { return h.scopedHash("jti", "j1") },
	} {
		if key(a) == key(b) || key(a) == key(c) {
			t.Errorf("%s: %q is shared across clients or issuers", name, key(a))
		}
		if key(a) != key(a) {
			t.Errorf("%s: not stable", name)
		}
	}
	if a.sidIndexKey("x") == a.subIndexKey("x") {
		t.Error("a sid and a subject of the same value share an index")
	}
}
