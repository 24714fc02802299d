// Package reports is the ClickHouse side of disburse: the schema
// (schemas/clickhouse, applied by Migrate), the writer the sink stage uses
// to store payout events, and the queries behind the report API, the CSV
// export and the reconciliation audit.
//
// Data flows one way: the sink stage reads the status topic and calls
// Store.InsertStatus; materialized views in ClickHouse derive the
// latest-state table (payouts) and the daily aggregates (daily_status);
// Summary, Export and Totals read them. Reports never query Postgres.
//
// Two engines run the same SQL through the Engine interface: a ClickHouse
// server through github.com/ClickHouse/clickhouse-go/v2 (production), and
// the engine embedded in the process through package reports/chdb (the
// default of `disburse dev`, and the tests). Everything but the transport,
// the SQL text and the row encoding, lives here once.
package reports
