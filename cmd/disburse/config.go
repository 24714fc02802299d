package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/disburse/disburse/processor"
)

// parseFlags parses args into fs, then fills every flag not given on the
// command line from its DISBURSE_* environment variable.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	err := fillFromEnv(fs)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return err
}

// fillFromEnv sets every flag not given on the command line from its
// DISBURSE_* environment variable.
func fillFromEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		env := "DISBURSE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, serr)
			}
		}
	})
	return err
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// common is the configuration every role that touches Postgres and Kafka shares.
type common struct {
	postgresURL  string
	kafkaBrokers string
	topicPrefix  string
	partitions   int
	metricsAddr  string
	// replication and minInsync are how topics the service creates are
	// replicated: 1 and 1 suit one development broker, 3 and 2 production.
	replication int
	minInsync   int
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.postgresURL, "postgres-url", "", "Postgres connection URL (required)")
	fs.StringVar(&c.kafkaBrokers, "kafka-brokers", "", "comma-separated Kafka bootstrap brokers (required)")
	fs.StringVar(&c.topicPrefix, "topic-prefix", "disburse.", "prefix of the Kafka topic names")
	fs.IntVar(&c.partitions, "partitions", 12, "partitions for topics the service creates")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "127.0.0.1:9090", "address of /metrics, /healthz and /readyz")
	fs.IntVar(&c.replication, "kafka-replication-factor", 1, "replicas of each partition of the topics the service creates (production: 3)")
	fs.IntVar(&c.minInsync, "kafka-min-insync-replicas", 1, "min.insync.replicas of the topics the service creates: replicas that must hold a write (production: 2)")
}

// topicSpec is how the role creates missing topics.
func (c *common) topicSpec() processor.TopicSpec {
	return processor.TopicSpec{Partitions: int32(c.partitions), ReplicationFactor: int16(c.replication), MinInsyncReplicas: c.minInsync}
}

func (c *common) validate() error {
	var missing []string
	if c.postgresURL == "" {
		missing = append(missing, "--postgres-url (DISBURSE_POSTGRES_URL)")
	}
	if c.kafkaBrokers == "" {
		missing = append(missing, "--kafka-brokers (DISBURSE_KAFKA_BROKERS)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing settings: %s", strings.Join(missing, ", "))
	}
	if c.partitions < 1 || c.partitions > 1000 {
		return fmt.Errorf("--partitions must be 1 to 1000, got %d", c.partitions)
	}
	if c.replication < 1 || c.replication > 16 {
		return fmt.Errorf("--kafka-replication-factor must be 1 to 16, got %d", c.replication)
	}
	if c.minInsync < 1 || c.minInsync > c.replication {
		return fmt.Errorf("--kafka-min-insync-replicas must be 1 to --kafka-replication-factor (%d), got %d", c.replication, c.minInsync)
	}
	return nil
}
