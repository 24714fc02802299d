// Package dashboards holds the Grafana dashboards of disburse, one JSON
// file per view (see README.md). It has no code: its test keeps the
// dashboards true to docs/metrics.md.
package dashboards
