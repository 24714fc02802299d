// Package schemas holds the data contracts of disburse in one place: the
// Postgres migrations (postgres/*.sql, applied by `disburse migrate` with
// goose) and, in the events sub-package, the Kafka event payloads.
package schemas

import "embed"

// Postgres holds the numbered Postgres migrations, in goose's format.
//
//go:embed postgres/*.sql
var Postgres embed.FS
