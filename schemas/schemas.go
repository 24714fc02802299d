// Package schemas holds the data contracts of disburse in one place: the
// Postgres migrations (postgres/*.sql, applied by `disburse migrate` with
// goose), the ClickHouse migrations of the reports store (clickhouse/*.sql,
// applied by `disburse migrate` through package reports) and, in the
// events sub-package, the Kafka event payloads.
package schemas

import "embed"

// Postgres holds the numbered Postgres migrations, in goose's format.
//
//go:embed postgres/*.sql
var Postgres embed.FS

// ClickHouse holds the numbered ClickHouse migrations of the reports
// store (package reports applies them); {db} stands for the database.
//
//go:embed clickhouse/*.sql
var ClickHouse embed.FS
