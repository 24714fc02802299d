package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Quantiles are a leg's latency percentiles in milliseconds.
type Quantiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
}

// quantiles of durations in seconds (nearest rank); negative samples (clock
// skew between Postgres and this process, under a millisecond) count as 0.
func quantiles(secs []float64) Quantiles {
	if len(secs) == 0 {
		return Quantiles{}
	}
	s := slices.Clone(secs)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		i = max(0, min(i, len(s)-1))
		return math.Round(max(0, s[i])*1e3*10) / 10
	}
	return Quantiles{Count: len(s), P50: at(0.50), P95: at(0.95), P99: at(0.99)}
}

// Rate methods of sustainedRate.
const (
	rateBest60s = "best 60 s window"
	rateMiddle  = "middle 80% (10th to 90th percentile of the events' times)"
	rateTotal   = "total / elapsed (too few events, or too short a run, for a window)"
)

// sustainedRate is the events per second the pipeline kept up, from the
// events' times (unix seconds): over a run of at least 70 s, the best 60 s
// sliding window; over a shorter one, the middle 80% of the events (from
// the time 10% were done to the time 90% were), which leaves out the
// start-up ramp and the tail. Fewer than 20 events, or a middle shorter
// than 5 s (set-based stages finish such runs in a few bursts, and a
// window over one burst is not a sustained rate): total over elapsed.
func sustainedRate(times []float64, start float64) (float64, string) {
	n := len(times)
	if n == 0 {
		return 0, rateTotal
	}
	t := slices.Clone(times)
	slices.Sort(t)
	if span := t[n-1] - t[0]; span >= 70 {
		best, j := 0, 0
		for i := range t {
			for t[i]-t[j] > 60 {
				j++
			}
			best = max(best, i-j+1)
		}
		return float64(best) / 60, rateBest60s
	}
	if n >= 20 {
		lo, hi := int(0.1*float64(n)), int(0.9*float64(n))-1
		if d := t[hi] - t[lo]; d >= 5 {
			return float64(hi-lo) / d, rateMiddle
		}
	}
	if d := t[n-1] - start; d > 0 {
		return float64(n) / d, rateTotal
	}
	return 0, rateTotal
}

// ProcessUsage is one process's CPU and memory over a run.
type ProcessUsage struct {
	Name string `json:"name"`
	// What it ran.
	Runs              string  `json:"runs"`
	CPUSeconds        float64 `json:"cpu_seconds"`
	CPUSecondsPer1000 float64 `json:"cpu_seconds_per_1000_payouts"`
	PeakRSSMiB        float64 `json:"peak_rss_mib"`
}

// selfUsage is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return rusageCPU(&ru)
}

func rusageCPU(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS starts this process's peak RSS (VmHWM) afresh, so each run of
// one invocation reports its own peak (Linux: writing 5 to clear_refs).
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSMiB is this process's peak resident set (VmHWM) in MiB.
func peakRSSMiB() float64 { return peakRSSMiBOf("/proc/self/status") }

// peakRSSMiBOf reads VmHWM from a /proc/<pid>/status file; 0 when it
// cannot.
func peakRSSMiBOf(path string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// fmtRate formats events per second.
func fmtRate(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
