// Package processor holds what the Kafka consumer stages share: the one
// Kafka client constructor, topic creation, and the consume loop that polls
// a batch, hands it to a stage, and commits its offsets only after the stage
// has finished with it. Each stage lives in its own sub-package and is its
// own consumer group:
//
//	ledgerstage    requests -> debit in Postgres -> dispatch + status
//	dispatch       dispatch -> bank -> settle in Postgres -> status
//	callbackstage  status, batches -> callbacks recorded in Postgres -> delivered to merchants
//	sink           status -> ClickHouse (reports), in large batches
//
// Delivery between stages is at least once; every stage is idempotent on
// the disbursement id, so a redelivered record changes nothing twice.
package processor
