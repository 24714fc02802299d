package obs

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	groupLag = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "disburse_consumer_group_lag",
		Help: "Records a consumer group has not committed yet (end offset - committed offset), per group, topic and partition, from kadm. Unlike disburse_stage_consumer_lag it is measured from the broker, so it grows while the group's consumers are down.",
	}, []string{"group", "topic", "partition"})
	lagErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_consumer_group_lag_errors_total",
		Help: "Failed consumer lag measurements, per group.",
	}, []string{"group"})
)

// LagMonitor measures the lag of consumer groups every Every.
type LagMonitor struct {
	Admin  *kadm.Client
	Groups []string
	Every  time.Duration // default 15s
	Log    *slog.Logger
}

// NewLagMonitor measures groups through cl.
func NewLagMonitor(cl *kgo.Client, log *slog.Logger, groups ...string) *LagMonitor {
	return &LagMonitor{Admin: kadm.NewClient(cl), Groups: groups, Log: log}
}

// Run measures until ctx ends.
func (m *LagMonitor) Run(ctx context.Context) { repeat(ctx, m.Every, m.Measure) }

// repeat calls f at once and then every every (0: 15s) until ctx ends.
func repeat(ctx context.Context, every time.Duration, f func(context.Context)) {
	if every <= 0 {
		every = 15 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Measure sets the lag gauges once. A partition whose lag cannot be
// computed (no commit yet, offsets unavailable) keeps no series rather
// than a false 0.
func (m *LagMonitor) Measure(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lags, err := m.Admin.Lag(ctx, m.Groups...)
	if err != nil {
		if ctx.Err() == nil {
			for _, g := range m.Groups {
				lagErrors.WithLabelValues(g).Inc()
			}
			m.Log.Warn("consumer lag: cannot measure", "err", err)
		}
		return
	}
	for _, g := range m.Groups {
		l, ok := lags[g]
		if !ok {
			continue
		}
		if err := l.Error(); err != nil {
			lagErrors.WithLabelValues(g).Inc()
			m.Log.Warn("consumer lag: cannot measure group", "group", g, "err", err)
			continue
		}
		for _, p := range l.Lag.Sorted() {
			part := strconv.Itoa(int(p.Partition))
			if p.Err != nil || p.Lag < 0 {
				groupLag.DeleteLabelValues(g, p.Topic, part)
				continue
			}
			groupLag.WithLabelValues(g, p.Topic, part).Set(float64(p.Lag))
		}
	}
}
