package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"runtime"
	"time"
)

// version and commit are stamped at build time, as the Dockerfile does:
//
//	go build -ldflags "-X main.version=1.4.0 -X main.commit=$(git rev-parse HEAD)" ./cmd/disburse
//
// A plain `go build` leaves these defaults, so an unstamped binary says so.
var (
	version = "dev"
	commit  = "unknown"
)

func runVersion(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Printf("disburse %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// runProbe is the container health check: the image has no shell and no
// curl, so Compose runs `disburse probe http://127.0.0.1:9090/readyz` in the
// container. It exits 0 on a 2xx answer and 1 otherwise.
func runProbe(ctx context.Context, args []string) error {
	var timeout time.Duration
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: disburse probe [--timeout 3s] <url>, e.g. http://127.0.0.1:9090/readyz")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		return fmt.Errorf("probe url: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s", fs.Arg(0), resp.Status)
	}
	return nil
}
