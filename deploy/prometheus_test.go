package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
)

// promtool finds promtool (deploy/promtool.sh installs it). Without it the
// test skips, or fails under DISBURSE_REQUIRE_SERVICES=1 (CI, make test).
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	msg := "promtool not found: run deploy/promtool.sh (Debian's prometheus package)"
	if os.Getenv("DISBURSE_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg + " (DISBURSE_REQUIRE_SERVICES=1)")
	}
	t.Skip(msg)
	return ""
}

// ruleFiles are the rule files Prometheus loads (deploy/compose/prometheus.yml
// globs *.yml and *.yaml in this folder; the tests live in tests/).
func ruleFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, g := range []string{"prometheus/*.yml", "prometheus/*.yaml"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no rule files in deploy/prometheus")
	}
	return files
}

// TestPrometheusRules checks the rule files with promtool and runs their
// unit tests (deploy/prometheus/tests), which fire every alert.
func TestPrometheusRules(t *testing.T) {
	bin := promtool(t)
	out, err := exec.Command(bin, append([]string{"check", "rules"}, ruleFiles(t)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	tests, err := filepath.Glob("prometheus/tests/*_test.yml")
	if err != nil || len(tests) == 0 {
		t.Fatalf("no rule unit tests in deploy/prometheus/tests (%v)", err)
	}
	out, err = exec.Command(bin, append([]string{"test", "rules"}, tests...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type unitTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// runbookAnchors are the anchors of the ### sections under "## Runbooks"
// in docs/operations.md, with each section's text.
func runbookAnchors(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	in, cur := false, ""
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.TrimSpace(line[3:]) == "Runbooks"
			cur = ""
		case in && strings.HasPrefix(line, "### "):
			cur = githubAnchor(line[4:])
			sections[cur] = ""
		case cur != "":
			sections[cur] += line + "\n"
		}
	}
	return sections
}

// metricName finds the metric names an expression uses.
var metricName = regexp.MustCompile(`\b(disburse_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+)\b`)

// catalogue reads the metric names of docs/metrics.md and their types.
func catalogue(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9_:]+)` \\| ([a-z]+) \\|")
	cat := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		cat[m[1]] = m[2]
	}
	if len(cat) < 20 {
		t.Fatalf("docs/metrics.md: only %d metrics parsed", len(cat))
	}
	return cat
}

// unknownMetrics lists the names expr uses that docs/metrics.md does not
// catalogue (a histogram's _bucket, _sum and _count count as it).
func unknownMetrics(cat map[string]string, expr string) []string {
	var unknown []string
	for _, n := range metricName.FindAllString(expr, -1) {
		if _, ok := cat[n]; ok {
			continue
		}
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if s, ok := strings.CutSuffix(n, suf); ok {
				base = s
				break
			}
		}
		if cat[base] == "histogram" {
			continue
		}
		unknown = append(unknown, n)
	}
	return unknown
}

// TestPrometheusRulesLinked checks, without promtool, that every alert
// has a severity, a summary and a runbook_url pointing to a section of
// docs/operations.md that says what it means, how to confirm it and what
// to do; that every alert has a unit test that fires it; and that every
// metric a rule uses is in docs/metrics.md.
func TestPrometheusRulesLinked(t *testing.T) {
	sections := runbookAnchors(t)
	cat := catalogue(t)
	const base = "https://github.com/disburse/disburse/blob/main/docs/operations.md#"
	alerts := map[string]bool{}
	for _, f := range ruleFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		if err := yamlv3.Unmarshal(raw, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				name := r.Alert + r.Record
				if u := unknownMetrics(cat, r.Expr); len(u) > 0 {
					t.Errorf("%s: %s uses %v, not in docs/metrics.md", f, name, u)
				}
				if r.Alert == "" {
					continue
				}
				alerts[r.Alert] = true
				if s := r.Labels["severity"]; s != "page" && s != "ticket" {
					t.Errorf("%s: severity %q, want page or ticket", r.Alert, s)
				}
				if r.Annotations["summary"] == "" {
					t.Errorf("%s: no summary", r.Alert)
				}
				anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], base)
				if !ok {
					t.Errorf("%s: runbook_url %q does not start with %s", r.Alert, r.Annotations["runbook_url"], base)
					continue
				}
				text, ok := sections[anchor]
				if !ok {
					t.Errorf("%s: runbook_url anchor #%s is no ### section under ## Runbooks in docs/operations.md", r.Alert, anchor)
					continue
				}
				for _, part := range []string{"**Means:**", "**Confirm:**", "**Do:**"} {
					if !strings.Contains(text, part) {
						t.Errorf("%s: its runbook section has no %s paragraph", r.Alert, part)
					}
				}
			}
		}
	}
	raw, err := os.ReadFile("prometheus/tests/disburse-rules_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	var ut unitTests
	if err := yamlv3.Unmarshal(raw, &ut); err != nil {
		t.Fatal(err)
	}
	fired := map[string]bool{}
	for _, tc := range ut.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
	}
	var missing []string
	for a := range alerts {
		if !fired[a] {
			missing = append(missing, a)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("alerts no unit test fires: %v", missing)
	}
}

func TestUnknownMetrics(t *testing.T) {
	cat := map[string]string{"disburse_h_seconds": "histogram", "disburse_c_total": "counter"}
	got := unknownMetrics(cat, `rate(disburse_h_seconds_bucket[5m]) / rate(disburse_c_total[5m]) + disburse_c_total_count + disburse_x`)
	if strings.Join(got, ",") != "disburse_c_total_count,disburse_x" {
		t.Errorf("unknownMetrics = %v", got)
	}
	if a := githubAnchor("DisburseBooksViolation"); a != "disbursebooksviolation" {
		t.Errorf("anchor %q", a)
	}
}
