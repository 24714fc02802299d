package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

// dockerReachable reports whether a Docker daemon answers, checked once per
// test binary.
var dockerReachable = sync.OnceValue(func() bool {
	network, addr, ok := dockerAddr()
	if !ok {
		return false
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	if network == "tcp" {
		// The daemon may want TLS; accepting the connection is answer enough.
		c, err := dial(context.Background(), "", "")
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{DialContext: dial},
	}
	resp, err := client.Get("http://docker/_ping")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
})

// dockerAddr finds where the Docker API listens: DOCKER_HOST, else the
// usual sockets of rootful, rootless and desktop installs.
func dockerAddr() (network, addr string, ok bool) {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		u, err := url.Parse(h)
		if err != nil {
			return "", "", false
		}
		switch u.Scheme {
		case "unix":
			return "unix", u.Path, true
		case "tcp":
			return "tcp", u.Host, true
		default: // ssh://, npipe:// and others: not probed here
			return "", "", false
		}
	}
	candidates := []string{"/var/run/docker.sock"}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		candidates = append(candidates, filepath.Join(d, "docker.sock"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".docker", "run", "docker.sock"))
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return "unix", p, true
		}
	}
	return "", "", false
}

// startTimeout bounds pulling an image and starting a container.
const startTimeout = 5 * time.Minute

// dockerPostgres starts one PostgreSQL container per test binary and
// returns its server URL.
var dockerPostgres = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	image := envOr(EnvPostgresImage, defaultPostgresImage)
	c, err := tcpostgres.Run(ctx, image,
		tcpostgres.WithDatabase("disburse"),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.BasicWaitStrategies(),
		testcontainers.WithCmdArgs("-c", "max_connections=200"),
	)
	if err != nil {
		return "", fmt.Errorf("start %s in Docker: %w", image, err)
	}
	return c.ConnectionString(ctx, "sslmode=disable")
})

// dockerKafka starts one Kafka container per test binary and returns its
// broker addresses.
var dockerKafka = sync.OnceValues(func() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	image := envOr(EnvKafkaImage, defaultKafkaImage)
	c, err := tckafka.Run(ctx, image,
		testcontainers.WithEnv(map[string]string{
			"KAFKA_NUM_PARTITIONS":               "6",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":    "true",
			"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "6",
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("start %s in Docker: %w", image, err)
	}
	return c.Brokers(ctx)
})
