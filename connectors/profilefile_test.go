package connectors

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseProfileFileLaysDefaultsThenBanks(t *testing.T) {
	f, err := ParseProfileFile([]byte(`
base_url: http://127.0.0.1:9000
defaults:
  timeout: 2s
  max_in_flight: 256
  rate_limit: 0
  breaker: {min_requests: 50}
  windows: []
banks:
  bca:
    base_url: https://bca.example:8443/h2h
    max_in_flight: 512
    windows:
      - {kind: maintenance, start: "23:00", end: "00:30", days: [Sunday, monday]}
`))
	if err != nil {
		t.Fatal(err)
	}
	bca, bni := f.Profiles["bca"], f.Profiles["bni"]
	if bca.Timeout != 2*time.Second || bca.MaxInFlight != 512 || bca.RateLimit != 0 || bca.Breaker.MinRequests != 50 {
		t.Errorf("bca = %+v", bca)
	}
	if len(bca.Windows) != 1 || bca.Windows[0].Start != "23:00" || len(bca.Windows[0].Days) != 2 || bca.Windows[0].Days[0] != time.Sunday {
		t.Errorf("bca windows = %+v", bca.Windows)
	}
	if bni.MaxInFlight != 256 || len(bni.Windows) != 0 || bni.Breaker.FailureRatio != DefaultProfile.Breaker.FailureRatio {
		t.Errorf("bni = %+v", bni)
	}
	// A setting the file leaves out keeps the built-in value.
	if bni.SendAttempts != DefaultProfile.SendAttempts || bni.RetryMax != DefaultProfile.RetryMax {
		t.Errorf("bni kept settings = %+v", bni)
	}
	if got := f.URLFor("ovo", "http://flag"); got != "https://bca.example:8443/h2h" {
		t.Errorf("ovo (host bca) goes to %s", got)
	}
	if got := f.URLFor("bni", "http://flag"); got != "http://127.0.0.1:9000" {
		t.Errorf("bni goes to %s", got)
	}
}

func TestParseProfileFileEmptyIsBuiltIn(t *testing.T) {
	f, err := ParseProfileFile(nil)
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultProfiles()
	for code, p := range def {
		if got := f.Profiles[code]; got.MaxInFlight != p.MaxInFlight || got.Timeout != p.Timeout || len(got.Windows) != len(p.Windows) {
			t.Errorf("%s: %+v, want %+v", code, got, p)
		}
	}
	if f.URLFor("bca", "http://flag") != "http://flag" {
		t.Error("no base_url in the file: the flag's URL applies")
	}
}

func TestParseProfileFileRejects(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown top-level key", "bank: {}", "field bank not found"},
		{"unknown bank setting", "banks:\n  bca:\n    max_inflight: 3", "field max_inflight not found"},
		{"unknown breaker setting", "banks:\n  bca:\n    breaker: {ratio: 1}", "field ratio not found"},
		{"unknown bank", "banks:\n  xyz:\n    timeout: 1s", "banks.xyz: unknown bank"},
		{"e-wallet", "banks:\n  ovo:\n    timeout: 1s", "banks.ovo: ovo is an e-wallet"},
		{"bad duration", "banks:\n  bni:\n    timeout: 10", `banks.bni: timeout: "10" is not a duration`},
		{"zero duration", "defaults:\n  retry_base: 0s", "defaults: retry_base: 0s must be positive"},
		{"negative in-flight", "banks:\n  bri:\n    max_in_flight: -1", "banks.bri: max_in_flight: -1 must not be negative"},
		{"zero in-flight", "banks:\n  bri:\n    max_in_flight: 0", "banks.bri: max in-flight must be at least 1"},
		{"negative rate", "banks:\n  btn:\n    rate_limit: -5", "banks.btn: rate_limit: -5"},
		{"negative burst", "defaults:\n  burst: -1", "defaults: burst: -1 must not be negative"},
		{"negative min requests", "banks:\n  bca:\n    breaker: {min_requests: -2}", "banks.bca: breaker.min_requests: -2"},
		{"failure ratio", "banks:\n  bca:\n    breaker: {failure_ratio: 1.5}", "banks.bca: breaker.failure_ratio: 1.5"},
		{"retry max below base", "banks:\n  bca:\n    retry_base: 2s\n    retry_max: 1s", "banks.bca: retry backoff"},
		{"window kind", "banks:\n  bca:\n    windows: [{kind: lunch, start: '12:00', end: '13:00'}]", "banks.bca: windows[0]: kind"},
		{"window time", "banks:\n  bca:\n    windows: [{kind: cutoff, start: '25:00', end: '13:00'}]", "banks.bca: windows[0]: window cutoff: \"25:00\""},
		{"window day", "banks:\n  bca:\n    windows: [{kind: cutoff, start: '22:00', end: '23:00', days: [funday]}]", `"funday" is not a weekday`},
		{"bad base url", "base_url: ftp://x", "base_url:"},
		{"bank base url without host", "banks:\n  bca:\n    base_url: http://", "banks.bca.base_url:"},
		{"wrong type", "banks:\n  bca:\n    max_in_flight: many", "cannot unmarshal"},
		{"two documents", "defaults: {}\n---\ndefaults: {}", "more than one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProfileFile([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadProfileFileNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte("banks:\n  bca:\n    timeout: soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadProfileFile(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "banks.bca: timeout") {
		t.Fatalf("err = %v", err)
	}
	if _, err := LoadProfileFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing file loads")
	}
}

// The shipped files load: deploy/profiles/example.yaml is the built-in
// profiles spelled out, fast.yaml the bench's.
func TestShippedProfileFiles(t *testing.T) {
	ex, err := LoadProfileFile("../deploy/profiles/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range DefaultProfiles() {
		got := ex.Profiles[code]
		if got.Timeout != want.Timeout || got.MaxInFlight != want.MaxInFlight || got.RateLimit != want.RateLimit || got.Burst != want.Burst ||
			got.SendAttempts != want.SendAttempts || got.RetryBase != want.RetryBase || got.RetryMax != want.RetryMax ||
			got.Breaker != want.Breaker || len(got.Windows) != len(want.Windows) {
			t.Errorf("example.yaml %s = %+v, built-in %+v", code, got, want)
		}
		for i := range want.Windows {
			if g, w := got.Windows[i], want.Windows[i]; g.Kind != w.Kind || g.Start != w.Start || g.End != w.End || len(g.Days) != len(w.Days) {
				t.Errorf("example.yaml %s window %d = %+v, built-in %+v", code, i, g, w)
			}
		}
	}
	fast, err := LoadProfileFile("../deploy/profiles/fast.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for code, p := range fast.Profiles {
		if p.MaxInFlight < 64 || len(p.Windows) != 0 {
			t.Errorf("fast.yaml %s = %+v", code, p)
		}
	}
}

type namedConnector struct{ name string }

func (n namedConnector) Inquire(context.Context, string, string) (Inquiry, error) {
	return Inquiry{Status: n.name}, nil
}
func (n namedConnector) Transfer(context.Context, TransferRequest) (Result, error) {
	return Result{Reference: n.name}, nil
}
func (n namedConnector) Status(context.Context, string, string) (Result, error) {
	return Result{Reference: n.name}, nil
}
func (n namedConnector) Statement(context.Context, string, StatementQuery) (StatementPage, error) {
	return StatementPage{Next: n.name}, nil
}

func TestRouterRoutesByHostBank(t *testing.T) {
	r := NewRouter(namedConnector{"default"}, map[string]Connector{"bca": namedConnector{"bca"}})
	ctx := context.Background()
	if res, _ := r.Transfer(ctx, TransferRequest{BankCode: "gopay"}); res.Reference != "bca" {
		t.Errorf("gopay transfer went to %s", res.Reference)
	}
	if res, _ := r.Status(ctx, "bni", "x"); res.Reference != "default" {
		t.Errorf("bni status went to %s", res.Reference)
	}
	if page, _ := r.Statement(ctx, "linkaja", StatementQuery{}); page.Next != "default" {
		t.Errorf("linkaja (host bri) statement went to %s", page.Next)
	}
	if inq, _ := r.Inquire(ctx, "bca", "1"); inq.Status != "bca" {
		t.Errorf("bca inquiry went to %s", inq.Status)
	}
}

// FuzzParseProfileFile: any input either fails with an error or yields a
// profile for every bank that passes Validate.
func FuzzParseProfileFile(f *testing.F) {
	for _, s := range []string{"", "defaults: {timeout: 1s}", "banks: {bca: {max_in_flight: 3, windows: [{kind: cutoff, start: '23:00', end: '01:00'}]}}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pf, err := ParseProfileFile(data)
		if err != nil {
			return
		}
		for code, p := range pf.Profiles {
			if err := p.Validate(); err != nil {
				t.Fatalf("%s passed loading but not Validate: %v", code, err)
			}
		}
		for code, u := range pf.URLs {
			if checkBaseURL(u) != nil {
				t.Fatalf("%s: bad url %q kept", code, u)
			}
		}
	})
}
