package deploy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	yamlv3 "go.yaml.in/yaml/v3"
)

// loadCompose loads deploy/compose/compose.yaml as `docker compose` would:
// schema validation (unknown keys fail), interpolation with the defaults
// the file gives, paths resolved, consistency checks on.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir, err := filepath.Abs("compose")
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml"), Content: body}},
		Environment: types.Mapping{}, // no variables set: every default in the file must do
	}, func(o *loader.Options) {
		o.SetProjectName("disburse", true)
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

// TestComposeStack checks the Compose stack: the infrastructure services,
// every disburse role as its own service with a health check that the
// image (no shell) can run against the port the role serves, commands and
// settings the roles accept, and a start order that runs the migrations
// first.
func TestComposeStack(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"kafka", "postgres", "clickhouse", "prometheus", "grafana", "banksim", "migrate", "api"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("no %s service", name)
		}
	}
	if kafka, ok := p.Services["kafka"]; ok {
		if roles := kafka.Environment["KAFKA_PROCESS_ROLES"]; roles == nil || !strings.Contains(*roles, "controller") {
			t.Error("kafka: not a KRaft node (KAFKA_PROCESS_ROLES lacks controller)")
		}
	}

	stagesRun := map[string]string{}
	for name, s := range p.Services {
		if s.Image != "disburse:local" {
			if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
				t.Errorf("%s: no health check", name)
			}
			continue
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			if v != nil {
				env[k] = *v
			}
		}
		role, stages := checkRoleArgs(t, "compose service "+name, s.Command, env)
		if s.Build == nil || filepath.Base(s.Build.Dockerfile) != "Dockerfile" {
			t.Errorf("%s: not built from the root Dockerfile", name)
		}
		if len(stages) > 1 {
			t.Errorf("%s runs stages %v: one stage per service, so each scales alone", name, stages)
		}
		for _, st := range stages {
			if other, dup := stagesRun[st]; dup {
				t.Errorf("stage %s runs in both %s and %s", st, other, name)
			}
			stagesRun[st] = name
		}
		if role != "banksim" {
			if dep, ok := s.DependsOn["migrate"]; role != "migrate" && (!ok || dep.Condition != types.ServiceConditionCompletedSuccessfully) {
				t.Errorf("%s does not wait for migrate to complete", name)
			}
		}
		if !slices.Contains(longRunningRoles, role) {
			continue
		}
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 4 || hc.Test[0] != "CMD" || hc.Test[1] != "/disburse" || hc.Test[2] != "probe" {
			t.Errorf("%s: health check %v; want [CMD /disburse probe <url>] (the image has no shell)", name, hc)
			continue
		}
		url := hc.Test[3]
		listen := env["DISBURSE_METRICS_ADDR"]
		if role == "banksim" {
			listen = flagValue(s.Command, "--addr")
		}
		_, port, _ := strings.Cut(listen, ":")
		if port == "" || !strings.Contains(url, "127.0.0.1:"+port+"/") {
			t.Errorf("%s: probes %s but serves health on %q", name, url, listen)
		}
		if s.StopGracePeriod == nil {
			t.Errorf("%s: no stop_grace_period for the graceful drain", name)
		}
	}
	for _, st := range workerStages {
		if _, ok := stagesRun[st]; !ok {
			t.Errorf("no service runs the %s stage", st)
		}
	}

	// Prometheus loads the rules folder; Grafana the dashboards folder.
	mounts := func(service, sourceSuffix string) bool {
		for _, v := range p.Services[service].Volumes {
			if v.Type == types.VolumeTypeBind && strings.HasSuffix(filepath.ToSlash(v.Source), sourceSuffix) {
				return true
			}
		}
		return false
	}
	if !mounts("prometheus", "/deploy/prometheus") {
		t.Error("prometheus does not mount deploy/prometheus (the rules)")
	}
	if !mounts("grafana", "/dashboards") {
		t.Error("grafana does not mount dashboards/")
	}
	checkObservabilityConfig(t, p)
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			// dashboards/ is filled by the observability work; the rest must exist.
			if _, err := os.Stat(v.Source); err != nil && !strings.HasSuffix(v.Source, "/dashboards") {
				t.Errorf("%s mounts %s: %v", name, v.Source, err)
			}
		}
	}
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// mountTarget is where service mounts the bind source ending in suffix.
func mountTarget(p *types.Project, service, sourceSuffix string) string {
	for _, v := range p.Services[service].Volumes {
		if v.Type == types.VolumeTypeBind && strings.HasSuffix(filepath.ToSlash(v.Source), sourceSuffix) {
			return v.Target
		}
	}
	return ""
}

// checkObservabilityConfig follows the Prometheus and Grafana files the
// stack mounts: the rules are loaded from where deploy/prometheus is
// mounted, every scrape target is a disburse service's metrics port, and
// Grafana's dashboard provider reads where dashboards/ is mounted.
func checkObservabilityConfig(t *testing.T, p *types.Project) {
	t.Helper()
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join("compose", "prometheus.yml"), &prom)
	rules := mountTarget(p, "prometheus", "/deploy/prometheus")
	if len(prom.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no rule files")
	}
	for _, f := range prom.RuleFiles {
		if rules == "" || !strings.HasPrefix(f, rules+"/") {
			t.Errorf("prometheus.yml rule_files %s is outside the mounted rules folder %q", f, rules)
		}
	}
	scraped := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, _ := strings.Cut(target, ":")
				s, ok := p.Services[host]
				if !ok {
					t.Errorf("prometheus scrapes %s: no such service", target)
					continue
				}
				var metrics string
				if v := s.Environment["DISBURSE_METRICS_ADDR"]; v != nil {
					metrics = *v
				}
				if !strings.HasSuffix(metrics, ":"+port) {
					t.Errorf("prometheus scrapes %s, but the service serves metrics on %q", target, metrics)
				}
				scraped[host] = true
			}
		}
	}
	for name, s := range p.Services {
		if s.Image == "disburse:local" && len(s.Command) > 0 && (s.Command[0] == "api" || s.Command[0] == "worker") && !scraped[name] {
			t.Errorf("prometheus does not scrape %s", name)
		}
	}

	var dash struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join("compose", "grafana", "provisioning", "dashboards", "disburse.yaml"), &dash)
	want := mountTarget(p, "grafana", "/dashboards")
	if len(dash.Providers) != 1 || want == "" || dash.Providers[0].Options.Path != want {
		t.Errorf("grafana's dashboard provider reads %+v; dashboards/ is mounted at %q", dash.Providers, want)
	}
	if mountTarget(p, "grafana", "/grafana/provisioning") != "/etc/grafana/provisioning" {
		t.Error("grafana does not mount its provisioning at /etc/grafana/provisioning")
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
