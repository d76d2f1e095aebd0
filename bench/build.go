package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Step names from builder/builder.go that the phases are made of. They are
// repeated here, not imported, because the benchmark reads kiln's debug log
// as a user would and must notice if a rename breaks that.
const (
	stepQEMU      = "qemu.start"
	stepSSH       = "ssh.connect"
	stepProvision = "provision"
	stepShutdown  = "shutdown"
	stepConvert   = "disk.convert"
)

// buildTimeout bounds one build; the example takes about 15 s under TCG.
const buildTimeout = 10 * time.Minute

// rssInterval is how often kiln's /proc status is read. VmHWM only grows,
// so the last reading misses at most what kiln grew in its final interval.
const rssInterval = 20 * time.Millisecond

// buildSample is one kiln build.
type buildSample struct {
	Total       time.Duration // wall time of the kiln process
	StartToQEMU time.Duration // process start → qemu.start finished
	QEMUToSSH   time.Duration // ssh.connect
	Provision   time.Duration
	Shutdown    time.Duration
	Convert     time.Duration
	PeakRSSKiB  int64 // kiln's own VmHWM
	// RusageKiB is wait4's ru_maxrss for kiln. Linux folds the largest
	// waited-for descendant (QEMU) into it, so it is not kiln's memory; it
	// is reported only to show that.
	RusageKiB int64
}

// Other is what the named phases leave out: boot.command, output.commit,
// the final cleanup and process exit.
func (s buildSample) Other() time.Duration {
	return s.Total - s.StartToQEMU - s.QEMUToSSH - s.Provision - s.Shutdown - s.Convert
}

// build runs the example build once, in its own working directory.
func (b *bench) build(ctx context.Context, i int) (buildSample, []byte, error) {
	dir := filepath.Join(b.tmp, fmt.Sprintf("build-%d", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return buildSample{}, nil, err
	}
	logPath := filepath.Join(dir, "debug.log")
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.kiln, "build", "-force", "-var", "guest_dir="+b.guestDir, b.template)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"KILN_LOG_PATH="+logPath,
		"KILN_LOG_DIR="+filepath.Join(dir, "logs"),
		"KILN_CACHE_DIR="+filepath.Join(dir, "cache"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Interrupted, kiln unwinds (stops QEMU, removes its files) before it
	// exits; if the benchmark dies, kiln gets SIGTERM and does the same.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return buildSample{}, nil, fmt.Errorf("starting kiln: %w", err)
	}
	stopPoll := make(chan struct{})
	peak := make(chan int64, 1)
	go func() { peak <- pollHWM(cmd.Process.Pid, "kiln", stopPoll) }()
	err := cmd.Wait()
	total := time.Since(start)
	close(stopPoll)
	s := buildSample{Total: total, PeakRSSKiB: <-peak}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
		}
		return s, out.Bytes(), err
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.RusageKiB = ru.Maxrss
	}
	if s.PeakRSSKiB == 0 {
		return s, out.Bytes(), fmt.Errorf("never read kiln's VmHWM from /proc/%d/status", cmd.Process.Pid)
	}

	f, err := os.Open(logPath)
	if err != nil {
		return s, out.Bytes(), fmt.Errorf("reading the debug log: %w", err)
	}
	defer f.Close()
	steps, err := parseStepLog(f)
	if err != nil {
		return s, out.Bytes(), fmt.Errorf("reading the debug log %s: %w", logPath, err)
	}
	for _, name := range []string{stepQEMU, stepSSH, stepProvision, stepShutdown, stepConvert} {
		if _, ok := steps[name]; !ok {
			return s, out.Bytes(), fmt.Errorf("debug log %s has no finished %s step", logPath, name)
		}
	}
	s.StartToQEMU = steps[stepQEMU].At.Sub(start)
	s.QEMUToSSH = steps[stepSSH].Duration
	s.Provision = steps[stepProvision].Duration
	s.Shutdown = steps[stepShutdown].Duration
	s.Convert = steps[stepConvert].Duration
	return s, out.Bytes(), nil
}

// pollHWM reads the process's peak resident set size (VmHWM, KiB) until
// stop is closed and returns the last value read. It checks the process
// name so that a reused pid cannot be mistaken for the one measured.
func pollHWM(pid int, name string, stop <-chan struct{}) int64 {
	path := fmt.Sprintf("/proc/%d/status", pid)
	var last int64
	t := time.NewTicker(rssInterval)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			if n, hwm := parseStatus(b); n == name && hwm > last {
				last = hwm
			}
		}
		select {
		case <-stop:
			return last
		case <-t.C:
		}
	}
}

// parseStatus returns the Name and VmHWM (KiB) fields of a /proc/PID/status
// file; hwm is 0 when absent, as for a process that has exited.
func parseStatus(b []byte) (name string, hwm int64) {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			name = v
		case "VmHWM":
			n, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
			if err == nil {
				hwm = n
			}
		}
	}
	return name, hwm
}

// stepRecord is a step's "finished" line in kiln's debug log.
type stepRecord struct {
	At       time.Time     // when it was logged (millisecond precision)
	Duration time.Duration // how long the step ran
}

// parseStepLog reads kiln's debug log (slog text lines) and returns each
// step's finished record, e.g. from
//
//	time=2026-01-02T03:04:05.678Z level=DEBUG msg=step build=qemu.example step=qemu.start event=finished duration=98.9ms err=<nil>
func parseStepLog(r io.Reader) (map[string]stepRecord, error) {
	steps := map[string]stepRecord{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		kv := parseLogfmt(sc.Text())
		if kv["msg"] != "step" || kv["event"] != "finished" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, kv["time"])
		if err != nil {
			return nil, fmt.Errorf("step %s: bad time %q: %w", kv["step"], kv["time"], err)
		}
		d, err := time.ParseDuration(kv["duration"])
		if err != nil {
			return nil, fmt.Errorf("step %s: bad duration %q: %w", kv["step"], kv["duration"], err)
		}
		steps[kv["step"]] = stepRecord{At: at, Duration: d}
	}
	return steps, sc.Err()
}

// parseLogfmt splits a slog text line into its key=value pairs, unquoting
// quoted values. A key that appears twice keeps its first value: slog
// writes the record's own msg before any attribute of the same name.
func parseLogfmt(line string) map[string]string {
	kv := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			break
		}
		key := line[:eq]
		line = line[eq+1:]
		var val string
		if strings.HasPrefix(line, `"`) {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				break
			}
			val, _ = strconv.Unquote(q)
			line = line[len(q):]
		} else {
			end := strings.IndexByte(line, ' ')
			if end < 0 {
				end = len(line)
			}
			val, line = line[:end], line[end:]
		}
		if _, dup := kv[key]; !dup {
			kv[key] = val
		}
	}
	return kv
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
