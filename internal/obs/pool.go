package obs

import (
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	poolAcquired = prometheus.NewDesc("disburse_pg_pool_acquired_connections", "Postgres connections in use (pgxpool).", nil, nil)
	poolIdle     = prometheus.NewDesc("disburse_pg_pool_idle_connections", "Idle Postgres connections (pgxpool).", nil, nil)
	poolTotal    = prometheus.NewDesc("disburse_pg_pool_total_connections", "Postgres connections open, in use or idle (pgxpool).", nil, nil)
	poolMax      = prometheus.NewDesc("disburse_pg_pool_max_connections", "Most Postgres connections the pool may open (pgxpool).", nil, nil)
	poolAcquires = prometheus.NewDesc("disburse_pg_pool_acquires_total", "Connections acquired from the pool.", nil, nil)
	poolEmpty    = prometheus.NewDesc("disburse_pg_pool_empty_acquires_total", "Acquires that had to wait because no connection was idle: pool pressure.", nil, nil)
	poolWait     = prometheus.NewDesc("disburse_pg_pool_acquire_wait_seconds_total", "Time spent waiting for a connection in acquires that found the pool empty.", nil, nil)
	poolCanceled = prometheus.NewDesc("disburse_pg_pool_canceled_acquires_total", "Acquires canceled by their context while waiting.", nil, nil)
)

type poolCollector struct{ pool *pgxpool.Pool }

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolAcquired, poolIdle, poolTotal, poolMax, poolAcquires, poolEmpty, poolWait, poolCanceled} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(poolAcquired, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(poolIdle, prometheus.GaugeValue, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolAcquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolEmpty, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolWait, prometheus.CounterValue, s.AcquireDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(poolCanceled, prometheus.CounterValue, float64(s.CanceledAcquireCount()))
}

// RegisterPool exports pool's statistics on reg. A process exports one
// pool: when one is registered already (disburse dev opens the same
// database once per role it hosts) the call is a no-op and reports false.
func RegisterPool(reg prometheus.Registerer, pool *pgxpool.Pool) bool {
	err := reg.Register(poolCollector{pool})
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		return false
	}
	return err == nil
}
