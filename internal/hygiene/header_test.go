package hygiene

import (
	"strings"
	"testing"
)

// foldedRef is the folding FoldedHasPrefix, FoldedEqual and AppendFolded
// implement, written plainly.
func foldedRef(name string) string {
	name = strings.Trim(name, " \t")
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

func TestFolded(t *testing.T) {
	names := []string{
		"", " ", "\t", "X-Tokenguard-Subject", "x_tokenguard_subject", " X-TOKENGUARD-Scope\t",
		"\t X_Forwarded_For \t", "Forwarded", " forwarded", "forwarded ", "Forwarded-X", "X-Forwarded-",
		"X-Real-IP", "x-real-ip", "X-Real_Ip", "Authorization", "a", "A_", "\tX\t", "X-Tokenguard",
		"Client-Cert", "CLIENT_CERT_CHAIN", "x-ré-ip", strings.Repeat("X_", 80),
	}
	wants := []string{
		"", "x", "x-tokenguard-", "x-tokenguard-subject", "x-forwarded-", "x-forwarded-for", "forwarded",
		"x-real-ip", "client-cert", "client-cert-chain", "authorization", "a-",
	}
	for _, n := range names {
		ref := foldedRef(n)
		var buf [16]byte
		if got := string(AppendFolded(buf[:0], n)); got != ref {
			t.Errorf("AppendFolded(%q) = %q, want %q", n, got, ref)
		}
		if got := string(AppendFolded([]byte("pre:"), n)); got != "pre:"+ref {
			t.Errorf("AppendFolded(pre:, %q) = %q", n, got)
		}
		for _, w := range wants {
			if got, want := FoldedEqual(n, w), ref == w; got != want {
				t.Errorf("FoldedEqual(%q, %q) = %v, want %v", n, w, got, want)
			}
			if got, want := FoldedHasPrefix(n, w), strings.HasPrefix(ref, w); got != want {
				t.Errorf("FoldedHasPrefix(%q, %q) = %v, want %v", n, w, got, want)
			}
		}
	}
}

func TestAppendFoldedAllocs(t *testing.T) {
	var buf [64]byte
	if n := testing.AllocsPerRun(100, func() { _ = AppendFolded(buf[:0], " X_Tokenguard_Subject\t") }); n != 0 {
		t.Errorf("AppendFolded allocates %v times with room in dst", n)
	}
}
