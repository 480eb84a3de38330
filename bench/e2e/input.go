package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// stampLayout is the time layout of nginx's $time_local.
const stampLayout = "02/Jan/2006:15:04:05 -0700"

// buildInput writes n lines to out: the non-empty lines of the files
// matching glob (sorted by name), repeated in order until there are n. Each
// line's bracketed time is replaced by a UTC time between base and
// base+span, increasing with the line number, so that the data lands in one
// or two daily partitions and inside every retention period, as live
// traffic would; the rest of the line is kept byte for byte. It returns the
// number of distinct source lines and of distinct client addresses written.
// With clients > 0, each line's client address is also rewritten by a
// clientRewriter over that many visitors (the many-visitor shape).
func buildInput(glob string, n int, base time.Time, span time.Duration, out string, clients int) (inputStats, error) {
	files, err := filepath.Glob(glob)
	if err != nil {
		return inputStats{}, fmt.Errorf("input glob %q: %w", glob, err)
	}
	if len(files) == 0 {
		return inputStats{}, fmt.Errorf("input glob %q: no file (the sample logs live in shared/testdata/logs beside the repository; -logs or BENCH_LOGS names others)", glob)
	}
	sort.Strings(files)
	var src [][]byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return inputStats{}, fmt.Errorf("read input: %w", err)
		}
		for l := range bytes.SplitSeq(raw, []byte("\n")) {
			l = bytes.TrimRight(l, "\r")
			if len(bytes.TrimSpace(l)) > 0 {
				src = append(src, l)
			}
		}
	}
	if len(src) == 0 {
		return inputStats{}, fmt.Errorf("input glob %q: no line", glob)
	}
	f, err := os.Create(out)
	if err != nil {
		return inputStats{}, fmt.Errorf("create input: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf, moved []byte
	var rw *clientRewriter
	if clients > 0 {
		rw = newClientRewriter(clientSeed, clients)
	}
	seen := map[netip.Addr]struct{}{} // bounded by the visitors, or by the distinct source lines
	for i := range n {
		t := base.Add(time.Duration(int64(span) / int64(n) * int64(i)))
		line := src[i%len(src)]
		if rw != nil {
			moved = rw.rewrite(moved[:0], line)
			line = moved
		}
		if a, ok := clientAddr(line); ok {
			seen[a] = struct{}{}
		}
		buf = restamp(buf[:0], line, t)
		buf = append(buf, '\n')
		if _, err := w.Write(buf); err != nil {
			_ = f.Close()
			return inputStats{}, fmt.Errorf("write input: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return inputStats{}, fmt.Errorf("write input: %w", err)
	}
	if err := f.Close(); err != nil {
		return inputStats{}, fmt.Errorf("write input: %w", err)
	}
	return inputStats{Distinct: len(src), Clients: len(seen)}, nil
}

// inputStats describes a written input file.
type inputStats struct {
	Distinct int // distinct source lines
	Clients  int // distinct client addresses (first tokens that are IP addresses)
}

// restamp appends line to dst with its first "[dd/Mon/yyyy:hh:mm:ss +zzzz]"
// replaced by t in UTC. A line without one is appended unchanged.
func restamp(dst, line []byte, t time.Time) []byte {
	i := bytes.IndexByte(line, '[')
	if i < 0 || len(line) < i+len(stampLayout)+2 || line[i+len(stampLayout)+1] != ']' {
		return append(dst, line...)
	}
	if _, err := time.Parse(stampLayout, string(line[i+1:i+1+len(stampLayout)])); err != nil {
		return append(dst, line...)
	}
	dst = append(dst, line[:i+1]...)
	dst = t.UTC().AppendFormat(dst, stampLayout)
	return append(dst, line[i+1+len(stampLayout):]...)
}

// readLines returns the lines of a file without their "\n".
func readLines(path string) ([][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	return bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")), nil
}
