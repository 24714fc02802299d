// Package obs holds the collectors a long-running role adds to the
// Prometheus registry beside the per-package metrics: consumer lag per
// group and partition (computed with kadm from the committed offsets, so
// it is true even when the stage is down), the pgx pool's statistics, and
// the periodic books check that runs the audit package's invariants.
// docs/metrics.md lists every metric; a test keeps it true.
package obs
