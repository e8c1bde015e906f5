package loadkit

import "testing"

func TestTailBufferAndFirstLine(t *testing.T) {
	tb := &TailBuffer{Max: 8}
	first := make(chan string, 1)
	fl := &FirstLine{W: tb, C: first}
	for _, s := range []string{"listen", "ing 127.0.0.1:5\nmore", " output\n"} {
		if _, err := fl.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got := <-first; got != "listening 127.0.0.1:5" {
		t.Errorf("first line %q", got)
	}
	if got := tb.String(); got != "\noutput" {
		t.Errorf("tail %q, want the last 8 bytes trimmed", got)
	}
}
