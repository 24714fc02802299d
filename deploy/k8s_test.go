package deploy

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// scaledObject is the part of KEDA's ScaledObject (keda.sh/v1alpha1) the
// manifests use; decoding strictly into it rejects any other field, as the
// API server's schema would.
type scaledObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		ScaleTargetRef struct {
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount int32 `json:"minReplicaCount"`
		MaxReplicaCount int32 `json:"maxReplicaCount"`
		PollingInterval int32 `json:"pollingInterval"`
		CooldownPeriod  int32 `json:"cooldownPeriod"`
		Triggers        []struct {
			Type     string            `json:"type"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// rendered is one overlay's objects, decoded into their API types.
type rendered struct {
	deployments  []appsv1.Deployment
	jobs         []batchv1.Job
	services     []corev1.Service
	configMaps   map[string]corev1.ConfigMap
	secrets      map[string]corev1.Secret
	pdbs         []policyv1.PodDisruptionBudget
	hpas         []autoscalingv2.HorizontalPodAutoscaler
	netpols      []networkingv1.NetworkPolicy
	scaled       []scaledObject
	serviceAccts []corev1.ServiceAccount
}

// render builds an overlay with the kustomize library, as `kubectl apply
// -k` does, and decodes every object strictly: an unknown or misspelt
// field fails the test.
func render(t *testing.T, overlay string) rendered {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("k8s", "overlays", overlay))
	if err != nil {
		t.Fatal(err)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", overlay, err)
	}
	r := rendered{configMaps: map[string]corev1.ConfigMap{}, secrets: map[string]corev1.Secret{}}
	for _, res := range m.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		kind, name := res.GetKind(), res.GetName()
		decode := func(into any) {
			if err := yaml.UnmarshalStrict(y, into); err != nil {
				t.Errorf("%s: %s %s does not decode strictly: %v", overlay, kind, name, err)
			}
		}
		switch kind {
		case "Deployment":
			var o appsv1.Deployment
			decode(&o)
			r.deployments = append(r.deployments, o)
		case "Job":
			var o batchv1.Job
			decode(&o)
			r.jobs = append(r.jobs, o)
		case "Service":
			var o corev1.Service
			decode(&o)
			r.services = append(r.services, o)
		case "ConfigMap":
			var o corev1.ConfigMap
			decode(&o)
			r.configMaps[o.Name] = o
		case "Secret":
			var o corev1.Secret
			decode(&o)
			r.secrets[o.Name] = o
		case "PodDisruptionBudget":
			var o policyv1.PodDisruptionBudget
			decode(&o)
			r.pdbs = append(r.pdbs, o)
		case "HorizontalPodAutoscaler":
			var o autoscalingv2.HorizontalPodAutoscaler
			decode(&o)
			r.hpas = append(r.hpas, o)
		case "NetworkPolicy":
			var o networkingv1.NetworkPolicy
			decode(&o)
			r.netpols = append(r.netpols, o)
		case "ScaledObject":
			var o scaledObject
			decode(&o)
			r.scaled = append(r.scaled, o)
		case "ServiceAccount":
			var o corev1.ServiceAccount
			decode(&o)
			r.serviceAccts = append(r.serviceAccts, o)
		default:
			t.Errorf("%s: unexpected %s %s; teach this test its type", overlay, kind, name)
		}
	}
	return r
}

func TestKubernetesOverlays(t *testing.T) {
	for _, overlay := range []string{"dev", "production"} {
		t.Run(overlay, func(t *testing.T) { checkOverlay(t, overlay) })
	}
}

// checkOverlay holds every overlay to the rules of docs/operations.md.
func checkOverlay(t *testing.T, overlay string) {
	r := render(t, overlay)
	if len(r.configMaps) != 1 {
		t.Fatalf("%d ConfigMaps; want the one disburse-config", len(r.configMaps))
	}
	var config corev1.ConfigMap
	for _, c := range r.configMaps {
		config = c
	}
	partitions, err := strconv.Atoi(config.Data["DISBURSE_PARTITIONS"])
	if err != nil {
		t.Fatalf("DISBURSE_PARTITIONS: %v", err)
	}
	prefix := config.Data["DISBURSE_TOPIC_PREFIX"]
	rf, _ := strconv.Atoi(config.Data["DISBURSE_KAFKA_REPLICATION_FACTOR"])
	isr, _ := strconv.Atoi(config.Data["DISBURSE_KAFKA_MIN_INSYNC_REPLICAS"])
	if overlay == "production" && (rf != 3 || isr != 2) {
		t.Errorf("production topics: replication %d, min.insync.replicas %d; want 3 and 2", rf, isr)
	}

	// Credentials: production renders no Secret (it comes from the secret
	// store); dev generates one with every key the pods read (containerEnv).
	if overlay == "production" && len(r.secrets) > 0 {
		t.Error("production renders a Secret: credentials must come from the secret store, not the repository")
	}

	byComponent := map[string]appsv1.Deployment{}
	stagesRun := map[string]bool{}
	for _, d := range r.deployments {
		comp := d.Spec.Template.Labels["app.kubernetes.io/component"]
		byComponent[comp] = d
		where := overlay + " Deployment " + d.Name
		spec := d.Spec.Template.Spec
		checkPodSecurity(t, where, spec)
		if len(spec.Containers) != 1 {
			t.Fatalf("%s: %d containers, want 1", where, len(spec.Containers))
		}
		c := spec.Containers[0]
		checkContainer(t, where, c, true)
		env := containerEnv(t, where, c, r, overlay)
		role, stages := checkRoleArgs(t, where, c.Args, env)
		for _, s := range stages {
			stagesRun[s] = true
		}
		if !slices.Contains(longRunningRoles, role) {
			t.Errorf("%s runs %q, not a long-running role", where, role)
		}
		if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
			t.Errorf("%s: no pod anti-affinity: its replicas may share a node", where)
		}
		if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < 15 {
			t.Errorf("%s: terminationGracePeriodSeconds too short for the graceful drain", where)
		}
		if s := d.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
			t.Errorf("%s: a rolling update must not take a replica down before its successor is ready (maxUnavailable 0)", where)
		}
		var covered bool
		for _, p := range r.pdbs {
			sel, err := labelsSelector(p.Spec.Selector.MatchLabels)
			if err == nil && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				covered = true
			}
		}
		if !covered {
			t.Errorf("%s: no PodDisruptionBudget selects its pods", where)
		}
		if role == "worker" && d.Spec.Replicas != nil && int(*d.Spec.Replicas) > partitions {
			t.Errorf("%s: %d replicas for %d partitions", where, *d.Spec.Replicas, partitions)
		}
	}
	for _, st := range workerStages {
		if !stagesRun[st] {
			t.Errorf("%s: no Deployment runs the %s stage", overlay, st)
		}
	}
	for _, want := range []string{"api", "banksim"} {
		if _, ok := byComponent[want]; !ok {
			t.Errorf("%s: no %s Deployment", overlay, want)
		}
	}

	// The migration Job.
	if len(r.jobs) != 1 || r.jobs[0].Spec.Template.Spec.Containers[0].Args[0] != "migrate" {
		t.Errorf("%s: want one Job running migrate", overlay)
	} else {
		j := r.jobs[0]
		checkPodSecurity(t, overlay+" Job", j.Spec.Template.Spec)
		checkContainer(t, overlay+" Job", j.Spec.Template.Spec.Containers[0], false)
		containerEnv(t, overlay+" Job", j.Spec.Template.Spec.Containers[0], r, overlay)
	}

	// The API scales on CPU.
	var apiHPA bool
	for _, h := range r.hpas {
		if h.Spec.ScaleTargetRef.Name != byComponent["api"].Name {
			continue
		}
		for _, m := range h.Spec.Metrics {
			if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceCPU {
				apiHPA = true
			}
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("%s: HPA %s bounds", overlay, h.Name)
		}
	}
	if !apiHPA {
		t.Errorf("%s: no HorizontalPodAutoscaler on CPU for the API", overlay)
	}

	// Each consumer stage scales on its group's lag, capped at the partitions.
	consumerTopics := map[string][]string{
		"ledger": {"requests"}, "dispatch": {"dispatch", "dispatch-retry"},
		"callbacks": {"status", "batches"}, "sink": {"status"},
	}
	scaledTargets := map[string]bool{}
	for _, so := range r.scaled {
		where := overlay + " ScaledObject " + so.Metadata.Name
		d, ok := deploymentNamed(r.deployments, so.Spec.ScaleTargetRef.Name)
		if !ok {
			t.Errorf("%s: targets %s, which is no Deployment", where, so.Spec.ScaleTargetRef.Name)
			continue
		}
		scaledTargets[d.Name] = true
		if so.Spec.MaxReplicaCount > int32(partitions) {
			t.Errorf("%s: maxReplicaCount %d above the %d partitions: the extra consumers would idle", where, so.Spec.MaxReplicaCount, partitions)
		}
		if so.Spec.MinReplicaCount < 1 || so.Spec.MinReplicaCount > so.Spec.MaxReplicaCount {
			t.Errorf("%s: minReplicaCount %d (max %d); a stage never scales to zero, its lag must be seen", where, so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount)
		}
		_, stages := checkRoleArgs(t, where, d.Spec.Template.Spec.Containers[0].Args, nil)
		if len(stages) != 1 {
			continue
		}
		want := consumerTopics[stages[0]]
		var got []string
		for _, tr := range so.Spec.Triggers {
			if tr.Type != "kafka" {
				t.Errorf("%s: trigger %s; want kafka lag", where, tr.Type)
				continue
			}
			if g := tr.Metadata["consumerGroup"]; g != prefix+stages[0] {
				t.Errorf("%s: consumerGroup %q; the %s stage's group is %q", where, g, stages[0], prefix+stages[0])
			}
			if _, err := strconv.Atoi(tr.Metadata["lagThreshold"]); err != nil {
				t.Errorf("%s: lagThreshold %q", where, tr.Metadata["lagThreshold"])
			}
			if b := tr.Metadata["bootstrapServers"]; b != config.Data["DISBURSE_KAFKA_BROKERS"] {
				t.Errorf("%s: bootstrapServers %q, the roles use %q", where, b, config.Data["DISBURSE_KAFKA_BROKERS"])
			}
			got = append(got, strings.TrimPrefix(tr.Metadata["topic"], prefix))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: lag on topics %v; the %s stage consumes %v", where, got, stages[0], want)
		}
	}
	for st := range consumerTopics {
		if d, ok := byComponent["worker-"+st]; ok && !scaledTargets[d.Name] {
			t.Errorf("%s: the %s stage has no ScaledObject", overlay, st)
		}
	}

	// NetworkPolicies: ingress denied by default; every Service port is
	// opened by some policy for the pods behind it.
	var defaultDeny bool
	for _, np := range r.netpols {
		if len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 && len(np.Spec.Ingress) == 0 &&
			slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			defaultDeny = true
		}
	}
	if !defaultDeny {
		t.Errorf("%s: no default-deny ingress NetworkPolicy", overlay)
	}
	for _, svc := range r.services {
		for _, sp := range svc.Spec.Ports {
			if !portOpened(r.netpols, svc.Spec.Selector, sp.TargetPort.String()) {
				t.Errorf("%s: Service %s port %s: no NetworkPolicy lets traffic in", overlay, svc.Name, sp.Name)
			}
		}
	}
}

func deploymentNamed(ds []appsv1.Deployment, name string) (appsv1.Deployment, bool) {
	for _, d := range ds {
		if d.Name == name {
			return d, true
		}
	}
	return appsv1.Deployment{}, false
}

func labelsSelector(m map[string]string) (labels.Selector, error) {
	if len(m) == 0 {
		return nil, fmt.Errorf("empty selector")
	}
	return labels.SelectorFromSet(m), nil
}

// portOpened reports whether a policy selecting pods with these labels
// lets traffic in on the named port.
func portOpened(nps []networkingv1.NetworkPolicy, podLabels map[string]string, port string) bool {
	for _, np := range nps {
		sel := labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels)
		// A Service selects by a subset of the pod's labels; a policy on
		// the component (or fewer labels) covers those pods.
		if !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		for _, in := range np.Spec.Ingress {
			for _, p := range in.Ports {
				if p.Port != nil && p.Port.String() == port {
					return true
				}
			}
		}
	}
	return false
}

var resourceQty = regexp.MustCompile(`^[0-9.]+[a-zA-Z]*$`)

// checkPodSecurity: non-root with a numeric uid, the runtime's seccomp
// profile, no service account token (the roles never call the API server).
func checkPodSecurity(t *testing.T, where string, spec corev1.PodSpec) {
	t.Helper()
	sc := spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: the pod must set runAsNonRoot and a non-zero runAsUser", where)
	}
	if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: no RuntimeDefault seccomp profile", where)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a service account token it does not need", where)
	}
}

// checkContainer: requests and limits, a locked-down container, and (for
// long-running roles) readiness and liveness probes on a declared port.
func checkContainer(t *testing.T, where string, c corev1.Container, probes bool) {
	t.Helper()
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[res], c.Resources.Limits[res]
		if req.IsZero() || lim.IsZero() {
			t.Errorf("%s: %s request and limit must both be set", where, res)
		} else if req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s above its limit %s", where, res, req.String(), lim.String())
		}
		if !resourceQty.MatchString(req.String()) {
			t.Errorf("%s: odd %s quantity %s", where, res, req.String())
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: the container must drop ALL capabilities, forbid privilege escalation and mount its root read-only", where)
	}
	if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
		t.Errorf("%s: image %q has no fixed tag", where, c.Image)
	}
	if !probes {
		return
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", where, kind)
			continue
		}
		if _, ok := ports[p.HTTPGet.Port.String()]; !ok {
			t.Errorf("%s: %s probe on port %s, which the container does not declare", where, kind, p.HTTPGet.Port.String())
		}
		if !slices.Contains([]string{"/healthz", "/readyz"}, p.HTTPGet.Path) {
			t.Errorf("%s: %s probe path %s; the roles serve /healthz and /readyz", where, kind, p.HTTPGet.Path)
		}
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("%s: liveness must probe /healthz (process up), not readiness of dependencies: a Postgres outage would restart every pod", where)
	}
	if m, ok := ports["metrics"]; ok && m != 9090 {
		t.Errorf("%s: metrics port %d", where, m)
	}
}

// containerEnv resolves the DISBURSE_* settings a container gets from the
// rendered ConfigMap and Secret, failing on a reference to a missing key.
// In production the Secret is external: its references are only listed.
func containerEnv(t *testing.T, where string, c corev1.Container, r rendered, overlay string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			t.Errorf("%s: envFrom only from the ConfigMap (secrets by key)", where)
			continue
		}
		cm, ok := r.configMaps[ef.ConfigMapRef.Name]
		if !ok {
			t.Errorf("%s: envFrom ConfigMap %s is not rendered", where, ef.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			v, ok := r.configMaps[ref.Name].Data[ref.Key]
			if !ok {
				t.Errorf("%s: %s from ConfigMap %s key %s, which does not exist", where, e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if overlay != "production" {
				if _, ok := r.secrets[ref.Name].Data[ref.Key]; !ok {
					t.Errorf("%s: %s from Secret %s key %s, which is not rendered", where, e.Name, ref.Name, ref.Key)
				}
			}
			env[e.Name] = "(secret)"
		}
	}
	return env
}
