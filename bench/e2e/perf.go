package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// perfRecord is a running `perf record` of one process.
type perfRecord struct {
	cmd  *exec.Cmd
	file string
	err  string
}

// startPerf samples pid with perf(1) at 499 Hz into file until stop.
func startPerf(pid int, file string) *perfRecord {
	p := &perfRecord{file: file}
	bin, err := exec.LookPath("perf")
	if err != nil {
		p.err = "perf not installed (Debian: linux-perf)"
		return p
	}
	p.cmd = exec.Command(bin, "record", "-F", "499", "-p", fmt.Sprint(pid), "-o", file, "--quiet")
	if err := p.cmd.Start(); err != nil {
		p.err = "perf record: " + err.Error()
		p.cmd = nil
	}
	time.Sleep(200 * time.Millisecond) // let it attach
	return p
}

// stop ends the recording and returns the share of samples per binary and
// the 25 hottest symbols.
func (p *perfRecord) stop() string {
	if p.cmd == nil {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Wait()
	var out bytes.Buffer
	for _, sort := range []string{"dso", "dso,sym"} {
		rep, err := exec.Command("perf", "report", "-i", p.file, "--stdio", "--no-children", "--sort", sort, "--percent-limit", "1").Output()
		if err != nil {
			return "perf report: " + err.Error()
		}
		n := 0
		for l := range strings.SplitSeq(string(rep), "\n") {
			if l = strings.TrimRight(l, " "); l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			out.WriteString(l + "\n")
			if n++; n == 25 {
				break
			}
		}
		out.WriteString("\n")
	}
	return strings.TrimSpace(out.String())
}
