package main

import (
	"runtime"
	"time"

	"github.com/connlog/connlog/ingest/logline"
	"github.com/connlog/connlog/store"
)

// parseResult is one parser over the whole input on one goroutine.
type parseResult struct {
	Shape         string
	Format        string
	Lines         int
	Accepted      int
	Best          time.Duration // fastest of the rounds
	BestCPU       time.Duration // least thread CPU time of the rounds
	AllocsPerLine float64       // over all lines of the fastest round, rejected ones included
	Err           string
}

func (r parseResult) linesPerSec() float64 { return float64(r.Lines) / r.Best.Seconds() }

// linesPerCPUSec is the rate per second of the thread's own CPU time: on a
// shared machine, where wall time also counts the other work's turns.
func (r parseResult) linesPerCPUSec() float64 {
	if r.BestCPU <= 0 {
		return 0
	}
	return float64(r.Lines) / r.BestCPU.Seconds()
}

// benchParse runs every format of [logline.Formats] over lines, rounds
// times each, on one locked OS thread (one core), and keeps the fastest
// round. Lines a format rejects count in the rate: the input is one file for
// all.
func benchParse(lines [][]byte, rounds int) []parseResult {
	out := benchParseShape("combined lines (the input file)", logline.Formats(), lines, rounds)
	// The other wire shapes of the same requests, from the distinct lines,
	// cycled to as many lines as the input.
	distinct := lines[:min(len(lines), 14487)]
	for _, s := range shapes(distinct) {
		cyc := make([][]byte, len(lines))
		for i := range cyc {
			cyc[i] = s.Lines[i%len(s.Lines)]
		}
		out = append(out, benchParseShape(s.Name, s.Formats, cyc, rounds)...)
	}
	return out
}

// benchParseShape runs each of formats over lines.
func benchParseShape(shape string, formats []string, lines [][]byte, rounds int) []parseResult {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var out []parseResult
	for _, name := range formats {
		r := parseResult{Shape: shape, Format: name, Lines: len(lines)}
		p, err := logline.New(logline.DefaultConfig().WithFormat(name, ""))
		if err != nil {
			r.Err = err.Error()
			out = append(out, r)
			continue
		}
		var h store.Hit
		for round := range rounds {
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			ok := 0
			start, cpu0 := time.Now(), threadCPU()
			for _, l := range lines {
				if p.Parse("", l, &h) == nil {
					ok++
				}
			}
			el, cpu := time.Since(start), threadCPU()-cpu0
			if round == 0 || cpu < r.BestCPU {
				r.BestCPU = cpu
			}
			runtime.ReadMemStats(&m1)
			if round == 0 || el < r.Best {
				r.Best = el
				r.Accepted = ok
				r.AllocsPerLine = float64(m1.Mallocs-m0.Mallocs) / float64(len(lines))
			}
		}
		out = append(out, r)
	}
	return out
}
