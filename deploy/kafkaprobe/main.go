// Command kafkaprobe waits until a Kafka broker answers a metadata request
// and lists at least one broker. deploy/kafka.sh runs it to know when the
// broker it started is ready.
//
//	go run ./deploy/kafkaprobe -brokers 127.0.0.1:59092 -timeout 90s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:59092", "comma-separated seed brokers")
	timeout := flag.Duration("timeout", 90*time.Second, "give up after this long")
	every := flag.Duration("progress", 5*time.Second, "print progress this often")
	pid := flag.Int("pid", 0, "if set, stop early when this process (the broker) exits")
	minBrokers := flag.Int("min-brokers", 1, "wait until the metadata lists this many brokers (a cluster's size)")
	flag.Parse()

	if err := probe(strings.Split(*brokers, ","), *timeout, *every, *pid, *minBrokers); err != nil {
		fmt.Fprintln(os.Stderr, "kafkaprobe:", err)
		os.Exit(1)
	}
}

func probe(seeds []string, timeout, every time.Duration, pid, minBrokers int) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(2*time.Second),
		kgo.RequestRetries(0),
		kgo.RetryTimeout(2*time.Second),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	start := time.Now()
	lastReport := start
	var lastErr error // the last error not caused by running out of time
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 3*time.Second)
		brokers, err := adm.ListBrokers(attempt)
		cancelAttempt()
		if err == nil && len(brokers) >= max(minBrokers, 1) {
			fmt.Fprintf(os.Stderr, "kafkaprobe: %d broker(s) ready at %s after %s\n",
				len(brokers), strings.Join(seeds, ","), time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		if err == nil {
			err = fmt.Errorf("metadata lists %d of %d brokers yet", len(brokers), max(minBrokers, 1))
		}
		if ctx.Err() == nil || lastErr == nil {
			lastErr = err
		}
		err = lastErr
		if pid > 0 && !alive(pid) {
			return fmt.Errorf("broker process %d exited before it was ready (last error: %v)", pid, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no broker ready at %s within %s: %v", strings.Join(seeds, ","), timeout, err)
		}
		if time.Since(lastReport) >= every {
			lastReport = time.Now()
			fmt.Fprintf(os.Stderr, "kafkaprobe: still waiting (%s): %v\n", time.Since(start).Round(time.Second), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// alive reports whether a process exists; signal 0 checks without sending.
func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return p.Signal(syscall.Signal(0)) == nil
}
