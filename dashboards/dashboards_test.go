package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// views are the dashboards the operations guide promises, one file each.
var views = []string{"overview", "pipeline", "banks", "merchant-api", "callbacks", "ledger", "reports-sink", "kafka-clients"}

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Title       string `json:"title"`
	Type        string `json:"type"`
	Description string `json:"description"`
	Datasource  struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

var (
	metricName = regexp.MustCompile(`\b(disburse_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+)\b`)
	recorded   = regexp.MustCompile(`\bdisburse:[a-z0-9_:]+\b`)
	catRow     = regexp.MustCompile("(?m)^\\| `([a-z0-9_:]+)` \\| ([a-z]+) \\|")
	recordRule = regexp.MustCompile(`(?m)^\s*- record: (\S+)`)
)

func catalogue(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	cat := map[string]string{}
	for _, m := range catRow.FindAllStringSubmatch(string(raw), -1) {
		cat[m[1]] = m[2]
	}
	if len(cat) < 20 {
		t.Fatalf("docs/metrics.md: only %d metrics parsed", len(cat))
	}
	return cat
}

func recordingRules(t *testing.T) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob("../deploy/prometheus/*.yml")
	rules := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range recordRule.FindAllStringSubmatch(string(raw), -1) {
			rules[m[1]] = true
		}
	}
	return rules
}

// known reports whether name is catalogued (a histogram's series count).
func known(cat map[string]string, name string) bool {
	if _, ok := cat[name]; ok {
		return true
	}
	if strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "go_") {
		return true // the standard collectors (docs/metrics.md, Runtime)
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && cat[base] == "histogram" {
			return true
		}
	}
	return false
}

func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		if p.Type == "row" {
			out = append(out, flatten(p.Panels)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// problems lists what is wrong with one dashboard.
func problems(d dashboard, cat map[string]string, rules map[string]bool) []string {
	var out []string
	if d.UID == "" || d.Title == "" {
		out = append(out, "no uid or title")
	}
	if d.SchemaVersion < 36 {
		out = append(out, "schemaVersion below 36 (current Grafana schema)")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		out = append(out, "no datasource variable")
	}
	if vars["instance"] != "query" {
		out = append(out, "no instance query variable")
	}
	ps := flatten(d.Panels)
	if len(ps) == 0 {
		out = append(out, "no panels")
	}
	for _, p := range ps {
		if strings.TrimSpace(p.Description) == "" {
			out = append(out, "panel "+p.Title+": no description")
		}
		if p.Datasource.UID != "${datasource}" {
			out = append(out, "panel "+p.Title+": datasource is not ${datasource}")
		}
		if len(p.Targets) == 0 {
			out = append(out, "panel "+p.Title+": no query")
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				out = append(out, "panel "+p.Title+": query not filtered by $instance: "+tg.Expr)
			}
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 && len(recorded.FindAllString(tg.Expr, -1)) == 0 {
				out = append(out, "panel "+p.Title+": query names no metric: "+tg.Expr)
			}
			for _, n := range names {
				if !known(cat, n) {
					out = append(out, "panel "+p.Title+": "+n+" is not in docs/metrics.md")
				}
			}
			for _, n := range recorded.FindAllString(tg.Expr, -1) {
				if !rules[n] {
					out = append(out, "panel "+p.Title+": recording rule "+n+" is not in deploy/prometheus")
				}
			}
		}
	}
	return out
}

// TestDashboards parses every dashboard and checks it: templated on
// datasource and instance, every panel described and querying only
// metrics that docs/metrics.md lists (which TestMetricsCatalogue keeps
// equal to what the binary exports).
func TestDashboards(t *testing.T) {
	cat := catalogue(t)
	rules := recordingRules(t)
	files, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	uids := map[string]string{}
	for _, f := range files {
		names = append(names, strings.TrimSuffix(f, ".json"))
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if prev, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share uid %s", f, prev, d.UID)
		}
		uids[d.UID] = f
		for _, p := range problems(d, cat, rules) {
			t.Errorf("%s: %s", f, p)
		}
	}
	for _, v := range views {
		if !slices.Contains(names, v) {
			t.Errorf("dashboard %s.json missing", v)
		}
	}
}

// TestDashboardProblems shows the checks fail on a bad dashboard.
func TestDashboardProblems(t *testing.T) {
	cat := map[string]string{"disburse_h_seconds": "histogram"}
	var d dashboard
	d.SchemaVersion = 20
	d.Panels = []panel{{Title: "p", Type: "timeseries", Targets: []struct {
		Expr string `json:"expr"`
	}{{Expr: `rate(disburse_h_seconds_bucket[5m]) + disburse_nope + disburse:nope`}}}}
	got := strings.Join(problems(d, cat, map[string]bool{}), "\n")
	for _, want := range []string{"no uid", "schemaVersion", "no datasource variable", "no instance", "no description", "not ${datasource}", "not filtered by $instance", "disburse_nope is not in docs/metrics.md", "recording rule disburse:nope"} {
		if !strings.Contains(got, want) {
			t.Errorf("not reported: %q\n%s", want, got)
		}
	}
	if strings.Contains(got, "disburse_h_seconds_bucket is not in") {
		t.Errorf("a histogram's bucket series reported unknown:\n%s", got)
	}
}

// TestDashboardQueriesParse has promtool parse every panel query (with
// $instance replaced by .*), as recording rules in a scratch file.
func TestDashboardQueriesParse(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool not found: run deploy/promtool.sh"
		if os.Getenv("DISBURSE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + " (DISBURSE_REQUIRE_SERVICES=1)")
		}
		t.Skip(msg)
	}
	files, _ := filepath.Glob("*.json")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboards\n    rules:\n")
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		for _, p := range flatten(d.Panels) {
			for _, tg := range p.Targets {
				n++
				expr := strings.ReplaceAll(tg.Expr, "$instance", ".*")
				q, _ := json.Marshal(expr) // a JSON string is a YAML string
				fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", n, q)
			}
		}
	}
	rules := filepath.Join(t.TempDir(), "queries.yml")
	if err := os.WriteFile(rules, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool rejects a dashboard query: %v\n%s", err, out)
	}
	if n < 40 {
		t.Errorf("only %d queries found", n)
	}
}
