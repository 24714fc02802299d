// Package testenv finds or starts the real services that integration tests
// run against, so every such test begins with one line:
//
//	url := testenv.Postgres(t)        // a fresh, empty database for this test
//	brokers := testenv.Kafka(t)       // a real Apache Kafka broker
//	prefix := testenv.TopicPrefix(t)  // names for this test's topics and groups
//
// A test that must stop PostgreSQL itself takes a server of its own,
// never the shared one: testenv.PrivatePostgres(t) initialises a cluster
// from the local PostgreSQL binaries (as deploy/postgres.sh finds them) on
// a free loopback port, with Stop(StopImmediate or StopFast) and Start;
// without the binaries the test skips, or fails under
// DISBURSE_REQUIRE_SERVICES=1.
//
// Where the services come from, in order:
//
//  1. The environment: DISBURSE_TEST_POSTGRES_URL (a server URL; each test
//     gets its own database created on that server and dropped, WITH
//     (FORCE), when the test ends) and DISBURSE_TEST_KAFKA_BROKERS (comma
//     separated host:port). deploy/services.sh starts both as local
//     processes and prints these variables:
//
//     make services-up
//     eval "$(deploy/services.sh env)"
//
//  2. Docker, when a daemon answers (DOCKER_HOST or the default socket):
//     the service is started with testcontainers-go once per test binary
//     and shared by its tests; testcontainers' reaper removes the
//     container after the binary exits.
//
//  3. Otherwise the test is skipped with a message naming the missing
//     service and how to start it. With DISBURSE_REQUIRE_SERVICES=1 (CI and
//     deploy/test.sh set it) the test fails instead: CI never skips.
//
// A service that is configured but does not answer always fails the test.
//
// Tests sharing one broker stay apart by naming every topic and consumer
// group with TopicPrefix; what carries the prefix is deleted from the
// broker when the test ends. Databases are private to the test, so tests
// may run in parallel (t.Parallel) freely.
package testenv
