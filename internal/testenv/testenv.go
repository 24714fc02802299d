package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
)

// Environment variables read by this package.
const (
	EnvPostgresURL     = "DISBURSE_TEST_POSTGRES_URL"
	EnvKafkaBrokers    = "DISBURSE_TEST_KAFKA_BROKERS"
	EnvRequireServices = "DISBURSE_REQUIRE_SERVICES"
	// Images used when a service is started in Docker.
	EnvPostgresImage = "DISBURSE_TEST_POSTGRES_IMAGE"
	EnvKafkaImage    = "DISBURSE_TEST_KAFKA_IMAGE"
)

const (
	defaultPostgresImage = "postgres:15-alpine"
	// The testcontainers Kafka module drives Confluent's KRaft image.
	defaultKafkaImage = "confluentinc/confluent-local:7.9.0"
)

// missing stops a test for want of a service: a skip, or a failure when
// DISBURSE_REQUIRE_SERVICES=1.
func missing(tb testing.TB, service, envVar string) {
	tb.Helper()
	msg, fatal := missingMessage(service, envVar, os.Getenv(EnvRequireServices) == "1")
	if fatal {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

func missingMessage(service, envVar string, required bool) (msg string, fatal bool) {
	msg = fmt.Sprintf("%s not available: run `make services-up` and `eval $(deploy/services.sh env)`, or set %s", service, envVar)
	if required {
		msg += fmt.Sprintf(" (%s=1: a missing service fails the test)", EnvRequireServices)
	}
	return msg, required
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// randomHex returns n random bytes as lower-case hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}
