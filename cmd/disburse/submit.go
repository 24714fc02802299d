package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/disburse/disburse/batch"
)

// runSubmit uploads a batch file: validate locally, upload, follow the
// batch with a progress bar until it completes, print a summary.
func runSubmit(ctx context.Context, args []string) error {
	var apiURL, key, reference, mode, idemKey string
	var dryRun, allowFailures bool
	var poll time.Duration
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.StringVar(&apiURL, "api-url", "http://127.0.0.1:8080", "merchant API base URL")
	fs.StringVar(&key, "key", "", "secret key (sk_sandbox_... or sk_live_...) (required)")
	fs.StringVar(&reference, "reference", "", "the batch's reference_id (default: the file name)")
	fs.StringVar(&mode, "mode", batch.AllOrNothing, "all_or_nothing or partial")
	fs.StringVar(&idemKey, "idempotency-key", "", "batch Idempotency-Key (default: a hash of the file, so re-running submit never pays twice)")
	fs.BoolVar(&dryRun, "dry-run", false, "validate the file locally and stop")
	fs.BoolVar(&allowFailures, "allow-failures", false, "exit 0 even when items failed")
	fs.DurationVar(&poll, "poll", 500*time.Millisecond, "how often to ask for progress")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := fillFromEnv(fs); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: disburse submit --key sk_... [--dry-run] payouts.csv|payouts.json")
	}
	path := fs.Arg(0)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	mediaType := "text/csv"
	if strings.EqualFold(filepath.Ext(path), ".json") {
		mediaType = "application/json"
	}
	if reference == "" {
		reference = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}

	// 1. Validate locally with the server's own parser.
	parsed, err := batch.Read(bytes.NewReader(data), mediaType, batch.Header{ReferenceID: reference, Mode: mode})
	if err != nil {
		return fmt.Errorf("%s is not a valid batch: %w", path, err)
	}
	if fields := parsed.Header.Validate(); len(fields) > 0 {
		return fmt.Errorf("batch %s: %s", fields[0].Field, fields[0].Message)
	}
	fmt.Fprintf(os.Stderr, "%s: %d rows, %d valid, %d invalid\n", path, parsed.Rows, len(parsed.Items), parsed.InvalidRows)
	for i, e := range parsed.Errors {
		if i == 20 {
			fmt.Fprintf(os.Stderr, "  ... and %d more\n", parsed.InvalidRows-20)
			break
		}
		fmt.Fprintf(os.Stderr, "  row %d: %s %s: %s\n", e.Row, e.Field, e.Code, e.Message)
	}
	if parsed.InvalidRows > 0 && parsed.Header.Mode == batch.AllOrNothing {
		return &exitError{code: 1, err: errors.New("invalid rows in all_or_nothing mode: fix them, or pass --mode partial to send the valid ones")}
	}
	if dryRun {
		fmt.Fprintln(os.Stderr, "dry run: nothing uploaded")
		return nil
	}
	if key == "" {
		return errors.New("missing --key (DISBURSE_KEY): the environment's secret key")
	}
	if idemKey == "" {
		sum := sha256.Sum256(append([]byte(reference+"\x00"+parsed.Header.Mode+"\x00"), data...))
		idemKey = "submit-" + hex.EncodeToString(sum[:16])
	}

	// 2. Upload.
	c := &client{base: strings.TrimRight(apiURL, "/"), key: key}
	u := "/v1/batches"
	body := data
	if mediaType == "application/json" {
		body, err = withHeader(data, reference, parsed.Header.Mode)
		if err != nil {
			return err
		}
	} else {
		u += "?reference_id=" + urlQuery(reference) + "&mode=" + urlQuery(parsed.Header.Mode)
	}
	var accepted batch.Accepted
	if err := c.do(ctx, "POST", u, mediaType, idemKey, body, &accepted); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "batch %s accepted: %d items (%d rejected, %d already used)\n",
		accepted.ID, accepted.ItemCount, accepted.RejectedCount, accepted.DuplicateCount)

	// 3. Follow it.
	var b batch.Batch
	start := time.Now()
	for {
		b = batch.Batch{} // a fresh value: decoding into old maps would keep stale statuses
		if err := c.do(ctx, "GET", "/v1/batches/"+accepted.ID, "", "", nil, &b); err != nil {
			return err
		}
		progress(os.Stderr, b, time.Since(start))
		if b.Status == "COMPLETED" {
			break
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "\nstopped following; the batch goes on. Check it with GET /v1/batches/%s\n", b.ID)
			return ctx.Err()
		case <-time.After(poll):
		}
	}
	fmt.Fprintln(os.Stderr)

	// 4. Summary.
	summary(os.Stdout, b)
	failed := b.Counts["FAILED"].Count
	if failed > 0 && !allowFailures {
		return &exitError{code: 3, err: fmt.Errorf("%d of %d items failed (pass --allow-failures to exit 0)", failed, b.ItemCount)}
	}
	return nil
}

// progress draws one line: a bar, finished/total, rate, failures so far.
func progress(w io.Writer, b batch.Batch, elapsed time.Duration) {
	done, total := b.Finished(), b.ItemCount
	const width = 30
	filled := width
	if total > 0 {
		filled = done * width / total
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	fmt.Fprintf(w, "\r[%s%s] %d/%d  %.0f items/s  %d failed  %s ",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total, rate, b.Counts["FAILED"].Count, b.Status)
}

func summary(w io.Writer, b batch.Batch) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "batch %s (%s)\t\t\t\n", b.ID, b.ReferenceID)
	fmt.Fprintln(tw, "status\titems\tamount\t")
	statuses := make([]string, 0, len(b.Counts))
	for s := range b.Counts {
		statuses = append(statuses, s)
	}
	sort.Strings(statuses)
	for _, s := range statuses {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", s, b.Counts[s].Count, b.Counts[s].Amount)
	}
	if len(b.Failures) > 0 {
		fmt.Fprintln(tw, "failure code\titems\t\t")
		codes := make([]string, 0, len(b.Failures))
		for c := range b.Failures {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		for _, c := range codes {
			fmt.Fprintf(tw, "%s\t%d\t\t\n", c, b.Failures[c])
		}
	}
	tw.Flush()
}

// withHeader sets reference_id and mode in a JSON batch file.
func withHeader(data []byte, reference, mode string) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	ref, _ := json.Marshal(reference)
	m, _ := json.Marshal(mode)
	doc["reference_id"], doc["mode"] = ref, m
	return json.Marshal(doc)
}

func urlQuery(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "=", "%3D", "+", "%2B", " ", "%20", "#", "%23", "?", "%3F")
	return r.Replace(s)
}

// client is a minimal merchant API client for the CLI.
type client struct {
	base, key string
}

func (c *client) do(ctx context.Context, method, path, contentType, idemKey string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.key, "")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is the API running? `make run` starts one)", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct {
				Code, Message string
				Rows          []batch.RowError
			}
		}
		_ = json.Unmarshal(raw, &e)
		msg := fmt.Sprintf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message)
		for i, r := range e.Error.Rows {
			if i == 20 {
				break
			}
			msg += fmt.Sprintf("\n  row %d: %s %s: %s", r.Row, r.Field, r.Code, r.Message)
		}
		return errors.New(msg)
	}
	return json.Unmarshal(raw, out)
}
