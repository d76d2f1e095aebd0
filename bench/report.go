package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Targets from the benchmark issue.
const (
	overheadTarget = 2 * time.Second
	rssTargetKiB   = 60_000_000 / 1024 // 60 MB (10^6 bytes) in KiB
)

// stat is the spread of one measured quantity over the runs.
type stat struct {
	Median, Min, Max time.Duration
}

func statOf(ds []time.Duration) stat {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return stat{}
	}
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return stat{Median: med, Min: s[0], Max: s[n-1]}
}

func statBy[T any](xs []T, f func(T) time.Duration) stat {
	ds := make([]time.Duration, len(xs))
	for i, x := range xs {
		ds[i] = f(x)
	}
	return statOf(ds)
}

// summary is what the report prints.
type summary struct {
	Runs int

	StartToQEMU, QEMUToSSH, Provision, Shutdown, Convert, Other, Total stat
	GuestBoot, GuestLogin, GuestPoweroff                               stat

	// Derived, per build against the guest's medians.
	SSHLatency, ShutdownLatency, Overhead stat

	PeakRSS, Rusage kibStat
}

type kibStat struct{ Median, Min, Max int64 }

// summarize computes the report. Each build's overhead is its total minus
// its own provisioning and conversion and minus the guest's median boot,
// SSH login and poweroff: what remains is kiln's time.
func summarize(builds []buildSample, guests []guestSample) summary {
	s := summary{
		Runs:          len(builds),
		StartToQEMU:   statBy(builds, func(b buildSample) time.Duration { return b.StartToQEMU }),
		QEMUToSSH:     statBy(builds, func(b buildSample) time.Duration { return b.QEMUToSSH }),
		Provision:     statBy(builds, func(b buildSample) time.Duration { return b.Provision }),
		Shutdown:      statBy(builds, func(b buildSample) time.Duration { return b.Shutdown }),
		Convert:       statBy(builds, func(b buildSample) time.Duration { return b.Convert }),
		Other:         statBy(builds, buildSample.Other),
		Total:         statBy(builds, func(b buildSample) time.Duration { return b.Total }),
		GuestBoot:     statBy(guests, func(g guestSample) time.Duration { return g.Boot }),
		GuestLogin:    statBy(guests, func(g guestSample) time.Duration { return g.Login }),
		GuestPoweroff: statBy(guests, func(g guestSample) time.Duration { return g.Poweroff }),
		PeakRSS:       kibStatBy(builds, func(b buildSample) int64 { return b.PeakRSSKiB }),
		Rusage:        kibStatBy(builds, func(b buildSample) int64 { return b.RusageKiB }),
	}
	boot, login, off := s.GuestBoot.Median, s.GuestLogin.Median, s.GuestPoweroff.Median
	s.SSHLatency = statBy(builds, func(b buildSample) time.Duration { return b.QEMUToSSH - boot - login })
	s.ShutdownLatency = statBy(builds, func(b buildSample) time.Duration { return b.Shutdown - off })
	s.Overhead = statBy(builds, func(b buildSample) time.Duration {
		return b.Total - boot - login - off - b.Provision - b.Convert
	})
	return s
}

func kibStatBy(builds []buildSample, f func(buildSample) int64) kibStat {
	v := make([]int64, len(builds))
	for i, b := range builds {
		v[i] = f(b)
	}
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return kibStat{}
	}
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return kibStat{Median: med, Min: v[0], Max: v[n-1]}
}

func writeReport(w io.Writer, s summary) {
	fmt.Fprintf(w, "kiln bench: %d builds of testdata/example/example.pkr.hcl and %d direct QEMU boots of its guest (TCG)\n\n", s.Runs, s.Runs)
	const format = "%-36s %9s %9s %9s\n"
	row := func(name string, st stat) {
		fmt.Fprintf(w, format, name, secs(st.Median), secs(st.Min), secs(st.Max))
	}
	fmt.Fprintf(w, format, "phase", "median", "min", "max")
	fmt.Fprintln(w, "kiln build")
	row("  start to QEMU", s.StartToQEMU)
	row("  QEMU to SSH", s.QEMUToSSH)
	row("  provisioning", s.Provision)
	row("  shutdown", s.Shutdown)
	row("  conversion", s.Convert)
	row("  rest (commit, cleanup, exit)", s.Other)
	row("  total", s.Total)
	fmt.Fprintln(w, "guest alone (plain QEMU, kiln's options)")
	row("  boot", s.GuestBoot)
	row("  SSH login", s.GuestLogin)
	row("  poweroff", s.GuestPoweroff)
	fmt.Fprintln(w, "kiln's own time")
	row("  SSH detection latency", s.SSHLatency)
	row("  shutdown detection latency", s.ShutdownLatency)
	row("  overhead", s.Overhead)

	fmt.Fprint(w, `
start to QEMU: kiln's process start to QEMU started and resumed (startup, template,
  checksum, disk copy and resize, QEMU launch, QMP); total: wall time of kiln.
guest boot: QEMU start to "kiln-guest: sshd ready" on the serial console; SSH login:
  from there to the first command done with the system ssh; poweroff: "poweroff" sent
  over that connection to QEMU's exit.
SSH detection latency = QEMU to SSH - guest boot - guest SSH login
shutdown detection latency = shutdown - guest poweroff
overhead = total - guest boot - guest SSH login - guest poweroff - provisioning - conversion,
  per build against the guest medians: kiln's own time (startup, template, checksum,
  disk copy, QEMU launch and QMP, SSH detection latency, shutdown detection, output
  commit and cleanup).

`)
	fmt.Fprintf(w, "overhead: median %s, max %s (target <= %s): %s\n",
		secs(s.Overhead.Median), secs(s.Overhead.Max), secs(overheadTarget), verdict(s.Overhead.Median <= overheadTarget))
	fmt.Fprintf(w, "peak RSS of kiln itself (VmHWM): median %s, max %s (target <= %s): %s\n",
		mb(s.PeakRSS.Median), mb(s.PeakRSS.Max), mb(rssTargetKiB), verdict(s.PeakRSS.Max <= rssTargetKiB))
	fmt.Fprintf(w, "  (not wait4's ru_maxrss, %s: Linux folds kiln's largest child, QEMU, into it)\n", mb(s.Rusage.Max))
}

func verdict(ok bool) string {
	if ok {
		return "OK"
	}
	return "over target"
}

func secs(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// mb formats KiB as MB (10^6 bytes).
func mb(kib int64) string {
	return fmt.Sprintf("%.1f MB", float64(kib)*1024/1e6)
}
