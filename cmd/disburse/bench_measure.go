package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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

// serverCPU measures a PostgreSQL server's CPU time when it runs on this
// machine: the postmaster's own time, the time of the backends it has
// reaped (cutime, cstime: every connection that closed), and that of its
// live children (background writer, WAL writer, checkpointer, backends
// still open). Between two readings this is everything the server did,
// for the run's connections and any other client's (on a shared machine,
// other work shows here too). ok is false when the server is not local
// (its postmaster is not in this machine's /proc).
type serverCPU struct {
	postmaster int
}

// localPostgres finds the postmaster of the server admin talks to, when
// it runs on this machine.
func localPostgres(ctx context.Context, admin *pgxpool.Pool) (serverCPU, bool) {
	var backend int
	if err := admin.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return serverCPU{}, false
	}
	ppid, ok := procField(fmt.Sprintf("/proc/%d/stat", backend), 3)
	if !ok || ppid <= 1 {
		return serverCPU{}, false
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid)); err != nil || !strings.HasPrefix(strings.TrimSpace(string(comm)), "postgres") {
		return serverCPU{}, false
	}
	return serverCPU{postmaster: int(ppid)}, true
}

// cpu is the server's CPU time so far (see serverCPU).
func (s serverCPU) cpu() time.Duration {
	tick := float64(time.Second) / 100 // USER_HZ: 100 on Linux
	var ticks int64
	for _, f := range []int{13, 14, 15, 16} { // utime, stime, cutime, cstime
		v, _ := procField(fmt.Sprintf("/proc/%d/stat", s.postmaster), f)
		ticks += v
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == s.postmaster {
			continue
		}
		stat := fmt.Sprintf("/proc/%d/stat", pid)
		if pp, ok := procField(stat, 3); !ok || pp != int64(s.postmaster) {
			continue
		}
		for _, f := range []int{13, 14} {
			v, _ := procField(stat, f)
			ticks += v
		}
	}
	return time.Duration(float64(ticks) * tick)
}

// procField is field i (0-based, after the pid) of a /proc/<pid>/stat
// file as a number: 3 is the parent pid, 13 utime, 14 stime, 15 cutime,
// 16 cstime. The command name in parentheses may hold spaces, so fields
// are counted from the last ')'.
func procField(path string, i int) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, false
	}
	fields := strings.Fields(s[end+1:]) // fields[0] is the state (field 2)
	if i-2 < 0 || i-2 >= len(fields) {
		return 0, false
	}
	v, err := strconv.ParseInt(fields[i-2], 10, 64)
	return v, err == nil
}
