package main

import (
	"testing"
	"time"
)

func TestParseStatReadsNameAndCPU(t *testing.T) {
	// A chDB pool thread of connlog serve, and a name with spaces and ')'.
	for _, c := range []struct {
		line string
		comm string
		cpu  time.Duration
	}{
		{"9120 (MergeMutate) S 9091 9091 1 0 -1 4194368 1320 0 0 0 201 34 0 0 20 0 58 0 29551 5603938304 96520 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 -1 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n", "MergeMutate", 2350 * time.Millisecond},
		{"12 (a b) c)) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1", "a b) c)", 100 * time.Millisecond},
	} {
		s, err := parseStat([]byte(c.line))
		if err != nil {
			t.Fatalf("parseStat(%q): %v", c.line, err)
		}
		if s.Comm != c.comm || s.CPU != c.cpu {
			t.Errorf("parseStat(%q) = %q %v, want %q %v", c.line, s.Comm, s.CPU, c.comm, c.cpu)
		}
	}
	for _, bad := range []string{"", "12 no parens 1 2 3", "12 (x) R 1 2 3"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestSplitCPUCountsGoThreads(t *testing.T) {
	before := map[string]threadStat{
		"1": {"connlog", 1 * time.Second},
		"2": {"connlog", 2 * time.Second},
		"3": {"MergeMutate", 5 * time.Second},
	}
	after := map[string]threadStat{
		"1": {"connlog", 3 * time.Second},     // +2s Go
		"2": {"connlog", 2 * time.Second},     // idle
		"3": {"MergeMutate", 6 * time.Second}, // +1s engine
		"4": {"QueryPipelineEx", time.Second}, // new: +1s engine
	}
	goTIDs := map[string]bool{"1": true, "2": true}
	c := splitCPU(before, after, 5*time.Second, func(tid string) bool { return goTIDs[tid] }) // 1s more from threads that exited
	if c.Go != 2*time.Second || c.Engine() != 3*time.Second {
		t.Errorf("Go %v, engine %v; want 2s and 3s", c.Go, c.Engine())
	}
	if got := c.top(2); got != "connlog 2s, MergeMutate 1s" && got != "connlog 2s, QueryPipelineEx 1s" {
		t.Errorf("top(2) = %q", got)
	}
}

func TestParseVmHWM(t *testing.T) {
	n, err := parseVmHWM([]byte("Name:\tconnlog\nVmPeak:\t 5603938 kB\nVmHWM:\t  386080 kB\nVmRSS:\t  300000 kB\n"))
	if err != nil || n != 386080<<10 {
		t.Errorf("parseVmHWM = %d, %v; want %d", n, err, 386080<<10)
	}
	if _, err := parseVmHWM([]byte("Name:\tx\n")); err == nil {
		t.Error("no VmHWM line: no error")
	}
}

func TestGoThreadsReadsWhereThreadsWait(t *testing.T) {
	maps := []byte(`00400000-00402000 r--p 00000000 fe:01 77 /tmp/bx/connlog
00402000-00fd4000 r-xp 00002000 fe:01 77 /tmp/bx/connlog
7f521e56e000-7f5236348000 r-xp 0455b000 fe:01 88 /root/.cache/connlog/chdb/libchdb.so
`)
	lo, hi, err := textMapping(maps, "/tmp/bx/connlog")
	if err != nil || lo != 0x402000 || hi != 0xfd4000 {
		t.Fatalf("textMapping = %x %x %v", lo, hi, err)
	}
	if _, _, err := textMapping(maps, "/usr/bin/other"); err == nil {
		t.Error("textMapping of an unmapped path: no error")
	}
	for _, c := range []struct {
		line string
		pc   uint64
		ok   bool
	}{
		{"202 0x1b6d1a8 0x80 0x0 0x0 0x0 0x0 0x7ffd7d1fbd38 0x496563\n", 0x496563, true}, // Go's futex
		{"-1 0x7f52301ffd00 0x7f529f720f16\n", 0x7f529f720f16, true},
		{"running\n", 0, false},
	} {
		pc, ok := syscallPC([]byte(c.line))
		if pc != c.pc || ok != c.ok {
			t.Errorf("syscallPC(%q) = %x %v, want %x %v", c.line, pc, ok, c.pc, c.ok)
		}
	}
}
