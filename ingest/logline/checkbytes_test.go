package logline

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkBytesRef is CheckBytes one byte at a time, as it was before it
// read eight bytes at a time: the two must agree on every input.
func checkBytesRef(msg []byte, maxBytes int) string {
	if len(msg) > maxBytes {
		return fmt.Sprintf("line of %d bytes exceeds max_line_bytes %d", len(msg), maxBytes)
	}
	ascii := true
	for i, c := range msg {
		if c < 0x20 && c != '\t' && !(c == '\n' && i == len(msg)-1) && !(c == '\r' && i >= len(msg)-2) || c == 0x7f {
			return fmt.Sprintf("binary data: control byte 0x%02x at byte %d", c, i)
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(msg) {
		return "invalid UTF-8"
	}
	return ""
}

func TestCheckBytesReadsEveryByte(t *testing.T) {
	line := `203.0.113.7 - - [04/Mar/2026:05:06:07 +0000] "GET /a?b=c HTTP/1.1" 200 12 "-" "Mozilla/5.0"`
	// every byte value at every position of a word, and the line ends
	for pos := range 17 {
		for c := range 256 {
			b := []byte(line)
			b[pos] = byte(c)
			for _, msg := range [][]byte{b, append(b, '\n'), append(b, '\r', '\n'), []byte("é" + string(b))} {
				if got, want := CheckBytes(msg, 1<<10), checkBytesRef(msg, 1<<10); got != want {
					t.Fatalf("byte 0x%02x at %d of %q: %q, want %q", c, pos, msg, got, want)
				}
			}
		}
	}
	for _, msg := range []string{"", "a", "\n", "\r\n", "\t", strings.Repeat("x", 8), strings.Repeat("x", 7) + "\x7f", "\xff\xfe", "ok\x00"} {
		if got, want := CheckBytes([]byte(msg), 1<<10), checkBytesRef([]byte(msg), 1<<10); got != want {
			t.Errorf("%q: %q, want %q", msg, got, want)
		}
	}
}

func FuzzCheckBytes(f *testing.F) {
	f.Add([]byte(`203.0.113.7 - - [04/Mar/2026:05:06:07 +0000] "GET / HTTP/1.1" 200 12 "-" "-"` + "\r\n"))
	f.Add([]byte("caf\xc3\xa9 \x7f\x80\xff\t\x00"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if got, want := CheckBytes(msg, 4096), checkBytesRef(msg, 4096); got != want {
			t.Fatalf("%q: %q, want %q", msg, got, want)
		}
	})
}
