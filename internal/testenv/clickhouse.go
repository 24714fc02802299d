package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Environment variables of the ClickHouse server tests.
const (
	// EnvClickHouseAddr names a ClickHouse server (host:port of the native
	// protocol) for the reports tests.
	EnvClickHouseAddr = "CLICKHOUSE_ADDR"
	// EnvClickHouseImage is the image started where Docker answers.
	EnvClickHouseImage     = "DISBURSE_TEST_CLICKHOUSE_IMAGE"
	defaultClickHouseImage = "clickhouse/clickhouse-server:25.8"
)

// ClickHouseServer returns the address of a ClickHouse server for tests:
// CLICKHOUSE_ADDR, else a container started in Docker when one answers.
// ok is false when there is neither; the reports tests then use the
// embedded engine.
func ClickHouseServer() (addr string, ok bool, err error) {
	if a := os.Getenv(EnvClickHouseAddr); a != "" {
		return a, true, nil
	}
	if !dockerReachable() {
		return "", false, nil
	}
	addr, err = dockerClickHouse()
	return addr, err == nil, err
}

// dockerClickHouse starts one ClickHouse container per test binary.
var dockerClickHouse = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	image := envOr(EnvClickHouseImage, defaultClickHouseImage)
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        image,
			ExposedPorts: []string{"9000/tcp"},
			// The default user without a password, reachable from the host.
			Env:        map[string]string{"CLICKHOUSE_SKIP_USER_SETUP": "1"},
			WaitingFor: wait.ForListeningPort("9000/tcp"),
		},
		Started: true,
	})
	if err != nil {
		return "", fmt.Errorf("start %s in Docker: %w", image, err)
	}
	return c.PortEndpoint(ctx, "9000/tcp", "")
})
