package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// threadStat is what one /proc/<pid>/task/<tid>/stat line says about a
// thread: its name (comm, at most 15 bytes) and the CPU it used so far.
type threadStat struct {
	Comm string
	CPU  time.Duration // utime+stime
}

// parseStat reads the name and utime+stime of a /proc stat line:
// "tid (comm) state ppid ... utime stime ...". The name is in parentheses
// and may itself hold spaces and parentheses, so it ends at the last ')'.
func parseStat(raw []byte) (threadStat, error) {
	open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || end < open || len(raw) < end+2 {
		return threadStat{}, errors.New("read /proc stat: no (comm)")
	}
	f := strings.Fields(string(raw[end+2:]))
	if len(f) < 13 {
		return threadStat{}, errors.New("read /proc stat: short line")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return threadStat{}, fmt.Errorf("read /proc stat: %w", err)
	}
	return threadStat{Comm: string(raw[open+1 : end]), CPU: time.Duration(ut+st) * time.Second / 100}, nil // USER_HZ is 100 on Linux
}

// threadStats reads every live thread of pid, by thread id. A thread that
// exits between the listing and its read is left out.
func threadStats(pid int) (map[string]threadStat, error) {
	dirs, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(dirs) == 0 {
		return nil, fmt.Errorf("list threads of %d: %v", pid, err)
	}
	out := make(map[string]threadStat, len(dirs))
	for _, d := range dirs {
		raw, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		if s, err := parseStat(raw); err == nil {
			out[filepath.Base(d)] = s
		}
	}
	return out, nil
}

// cpuSplit is a process's CPU over an interval, split by thread.
type cpuSplit struct {
	Total  time.Duration            // the whole process (threads that exited included)
	Go     time.Duration            // threads seen running Go code
	ByName map[string]time.Duration // live threads, by name
}

// Engine is the process CPU that Go threads did not use: chDB's threads
// and the threads that exited.
func (c cpuSplit) Engine() time.Duration { return c.Total - c.Go }

// splitCPU sums the CPU each thread used between two snapshots, by name
// and for the threads isGo says are Go's. total is the process CPU over the
// same interval. A thread that appears only in after counts from zero; the
// CPU of threads that exited between the snapshots is in total only, so
// it lands on the engine side (chDB's pools retire idle threads, Go keeps
// its own).
func splitCPU(before, after map[string]threadStat, total time.Duration, isGo func(tid string) bool) cpuSplit {
	c := cpuSplit{Total: total, ByName: map[string]time.Duration{}}
	for tid, a := range after {
		d := a.CPU - before[tid].CPU
		if b, ok := before[tid]; ok && b.CPU > a.CPU {
			d = 0 // a recycled thread id
		}
		c.ByName[a.Comm] += d
		if isGo(tid) {
			c.Go += d
		}
	}
	return c
}

// goThreads tells the Go runtime's threads of a process from chDB's. Names
// do not: every thread starts with the binary's name, chDB renames most of
// its own but not all, and it leaves a Go thread that ran a statement
// (cgo calls run on the calling thread) named "Unknown". So each sample
// reads where every blocked thread waits (/proc/<pid>/task/<tid>/syscall,
// last field: the user program counter): an idle Go thread waits in the
// runtime's own futex or epoll system call, inside the binary's text,
// while chDB's threads wait in libc. A thread seen waiting in the binary's
// text once is a Go thread for the rest of the run.
type goThreads struct {
	pid    int
	lo, hi uint64 // the binary's executable mapping
	seen   map[string]bool
}

func newGoThreads(pid int) (*goThreads, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return nil, fmt.Errorf("find Go threads: %w", err)
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, fmt.Errorf("find Go threads: %w", err)
	}
	g := &goThreads{pid: pid, seen: map[string]bool{}}
	if g.lo, g.hi, err = textMapping(maps, exe); err != nil {
		return nil, err
	}
	g.sample()
	return g, nil
}

// textMapping finds the executable mapping of path in a /proc maps file.
func textMapping(maps []byte, path string) (lo, hi uint64, err error) {
	for l := range bytes.SplitSeq(maps, []byte("\n")) {
		f := strings.Fields(string(l))
		if len(f) < 6 || f[5] != path || !strings.HasPrefix(f[1], "r-x") {
			continue
		}
		a, b, _ := strings.Cut(f[0], "-")
		lo, err1 := strconv.ParseUint(a, 16, 64)
		hi, err2 := strconv.ParseUint(b, 16, 64)
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, fmt.Errorf("find Go threads: %q: %w", l, err)
		}
		return lo, hi, nil
	}
	return 0, 0, fmt.Errorf("find Go threads: no executable mapping of %s", path)
}

// syscallPC is the user program counter of a /proc syscall line ("nr
// args... sp pc", or "-1 sp pc" outside a system call); false for a running
// thread.
func syscallPC(line []byte) (uint64, bool) {
	f := strings.Fields(string(line))
	if len(f) < 3 {
		return 0, false
	}
	pc, err := strconv.ParseUint(strings.TrimPrefix(f[len(f)-1], "0x"), 16, 64)
	return pc, err == nil
}

// sample records the threads now waiting inside the binary's text.
func (g *goThreads) sample() {
	if g == nil {
		return
	}
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", g.pid))
	for _, d := range dirs {
		tid := filepath.Base(d)
		if g.seen[tid] {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(d, "syscall"))
		if err != nil {
			continue
		}
		if pc, ok := syscallPC(raw); ok && pc >= g.lo && pc < g.hi {
			g.seen[tid] = true
		}
	}
}

// isGo reports whether tid was seen waiting in Go code.
func (g *goThreads) isGo(tid string) bool { return g != nil && g.seen[tid] }

// count is the number of Go threads seen.
func (g *goThreads) count() int {
	if g == nil {
		return 0
	}
	return len(g.seen)
}

// top lists the n names that used the most CPU, "name 1.2s", busiest first.
func (c cpuSplit) top(n int) string {
	names := make([]string, 0, len(c.ByName))
	for k := range c.ByName {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return c.ByName[names[i]] > c.ByName[names[j]] })
	var b strings.Builder
	for i, k := range names {
		if i == n || c.ByName[k] == 0 {
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", k, c.ByName[k].Round(10*time.Millisecond))
	}
	return b.String()
}

// peakRSS reads VmHWM (the resident set's high-water mark since the
// process started) from /proc/<pid>/status, in bytes.
func peakRSS(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read peak RSS: %w", err)
	}
	return parseVmHWM(raw)
}

func parseVmHWM(status []byte) (int64, error) {
	for l := range bytes.SplitSeq(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("VmHWM:")); ok {
			f := strings.Fields(string(v))
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("read peak RSS: %q", l)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read peak RSS: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("read peak RSS: no VmHWM line")
}
