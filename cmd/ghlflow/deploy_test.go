package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ghlflow/ghlflow/internal/config"
)

// invocation is one ghlflow process a deployment file starts.
type invocation struct {
	where string
	args  []string
	env   []string
	// configs maps a --config path in the file to a file here.
	configs map[string]string
}

// check parses the invocation with the command's own flag set (an unknown
// flag fails), reads its --config file as the binary would, and wants every
// GHLFLOW_* and Redis variable it sets to be one the command reads.
func (inv invocation) check(t *testing.T) {
	t.Helper()
	if len(inv.args) == 0 {
		t.Errorf("%s: no command", inv.where)
		return
	}
	var cmd *command
	for _, c := range root().subs {
		if c.name == inv.args[0] {
			cmd = c
		}
	}
	if cmd == nil || cmd.setup == nil {
		t.Errorf("%s: %q is not a ghlflow command", inv.where, inv.args[0])
		return
	}
	fs := flag.NewFlagSet(inv.args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.setup(fs)
	if err := fs.Parse(inv.args[1:]); err != nil {
		t.Errorf("%s: ghlflow %s: %v", inv.where, strings.Join(inv.args, " "), err)
		return
	}
	if fs.NArg() > 0 {
		t.Errorf("%s: unexpected arguments %q", inv.where, fs.Args())
	}
	accepted := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { accepted[config.EnvName(f.Name)] = true })
	isRole := slices.ContainsFunc(roles, func(r role) bool { return r.name == inv.args[0] })
	for _, name := range inv.env {
		if !strings.HasPrefix(name, "GHLFLOW_") && !strings.HasPrefix(name, "REDIS_") {
			continue
		}
		if !isRole || (!accepted[name] && !slices.Contains(roleEnvironment, name)) {
			t.Errorf("%s: ghlflow %s does not read %s", inv.where, inv.args[0], name)
		}
	}
	if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
		local, ok := inv.configs[f.Value.String()]
		if !ok {
			t.Errorf("%s: --config %s is not in the deployment files", inv.where, f.Value.String())
			return
		}
		if err := config.Apply(fs, config.Source{File: local, Getenv: func(string) string { return "" }}); err != nil {
			t.Errorf("%s: %v", inv.where, err)
		}
	}
}

func readYAMLDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err == io.EOF {
			return docs
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, doc)
	}
}

func strs(v any) []string {
	var out []string
	for _, x := range asList(v) {
		out = append(out, x.(string))
	}
	return out
}

func asList(v any) []any         { l, _ := v.([]any); return l }
func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

// TestComposeFile: every ghlflow service of deploy/compose.yaml runs a
// command with flags and variables the binary accepts; Redis keeps an AOF.
func TestComposeFile(t *testing.T) {
	doc := readYAMLDocs(t, "../../deploy/compose.yaml")[0]
	services := asMap(doc["services"])
	counts := map[string]int{}
	for name, s := range services {
		svc := asMap(s)
		if svc["build"] == nil {
			continue // not ghlflow
		}
		var env []string
		for k := range asMap(svc["environment"]) {
			env = append(env, k)
		}
		args := strs(svc["command"])
		invocation{where: "compose " + name, args: args, env: env}.check(t)
		replicas := 1
		if d := asMap(svc["deploy"]); d["replicas"] != nil {
			replicas = d["replicas"].(int)
		}
		counts[args[0]] += replicas
	}
	if counts["serve"] != 1 || counts["scheduler"] != 2 || counts["worker"] < 1 {
		t.Errorf("compose runs %v, want serve x1, scheduler x2, worker xN", counts)
	}
	conf, err := os.ReadFile("../../deploy/redis.conf")
	if err != nil || !strings.Contains(string(conf), "appendonly yes") {
		t.Errorf("deploy/redis.conf keeps no AOF (%v)", err)
	}
}

// TestKubernetesManifests: a Deployment per role, each with liveness and
// readiness probes on /healthz and /readyz of a port it declares, its
// arguments, variables and --config file accepted by the binary; the
// recipes come from a ConfigMap and the secret key from a Secret.
func TestKubernetesManifests(t *testing.T) {
	docs := readYAMLDocs(t, "../../deploy/k8s/ghlflow.yaml")
	dir := t.TempDir()
	configs := map[string]string{}
	kinds := map[string][]string{}
	for _, d := range docs {
		name := asMap(d["metadata"])["name"].(string)
		kinds[d["kind"].(string)] = append(kinds[d["kind"].(string)], name)
		if d["kind"] == "ConfigMap" && name == "ghlflow-config" {
			local := filepath.Join(dir, "config.yaml")
			writeTestFile(t, local, asMap(d["data"])["config.yaml"].(string))
			configs["/etc/ghlflow/config/config.yaml"] = local
		}
	}
	roleSeen := map[string]bool{}
	for _, d := range docs {
		if d["kind"] != "Deployment" {
			continue
		}
		pod := asMap(asMap(asMap(d["spec"])["template"])["spec"])
		for _, c := range asList(pod["containers"]) {
			ctr := asMap(c)
			where := "k8s " + asMap(d["metadata"])["name"].(string)
			var env []string
			secret := false
			for _, e := range asList(ctr["env"]) {
				env = append(env, asMap(e)["name"].(string))
				secret = secret || asMap(asMap(e)["valueFrom"])["secretKeyRef"] != nil
			}
			args := strs(ctr["args"])
			invocation{where: where, args: args, env: env, configs: configs}.check(t)
			roleSeen[args[0]] = true
			if !secret {
				t.Errorf("%s: the secret key does not come from a Secret", where)
			}
			ports := map[string]bool{}
			for _, p := range asList(ctr["ports"]) {
				ports[asMap(p)["name"].(string)] = true
			}
			for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
				get := asMap(asMap(ctr[probe])["httpGet"])
				if get["path"] != path || !ports[get["port"].(string)] {
					t.Errorf("%s: %s %v, want %s on a declared port", where, probe, get, path)
				}
			}
		}
	}
	for _, r := range []string{"serve", "scheduler", "worker"} {
		if !roleSeen[r] {
			t.Errorf("no Deployment runs %s", r)
		}
	}
	if !slices.Contains(kinds["ConfigMap"], "ghlflow-recipes") || !slices.Contains(kinds["Secret"], "ghlflow") {
		t.Errorf("manifests %v: want the recipes ConfigMap and the Secret", kinds)
	}
}

// TestSystemdUnits: one unit per role; ExecStart's command, its --config
// file (deploy/config.yaml) and the variables of Environment= and of the
// example EnvironmentFile are accepted by the binary.
func TestSystemdUnits(t *testing.T) {
	units, _ := filepath.Glob("../../deploy/systemd/*.service")
	envFile := readEnvNames(t, "../../deploy/systemd/env.example")
	seen := map[string]bool{}
	for _, u := range units {
		f, err := os.Open(u)
		if err != nil {
			t.Fatal(err)
		}
		inv := invocation{where: filepath.Base(u), env: envFile, configs: map[string]string{"/etc/ghlflow/config.yaml": "../../deploy/config.yaml"}}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
				fields := strings.Fields(v)
				inv.args = fields[1:]
			}
			if v, ok := strings.CutPrefix(line, "Environment="); ok {
				name, _, _ := strings.Cut(v, "=")
				inv.env = append(inv.env, name)
			}
		}
		f.Close()
		inv.check(t)
		if len(inv.args) > 0 {
			seen[inv.args[0]] = true
		}
	}
	for _, r := range []string{"serve", "scheduler", "worker"} {
		if !seen[r] {
			t.Errorf("no systemd unit runs %s", r)
		}
	}
}

// TestDockerfileCommand: the image's default command is one the binary
// accepts.
func TestDockerfileCommand(t *testing.T) {
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CMD (\[.*\])$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no CMD")
	}
	var args []string
	if err := json.Unmarshal(m[1], &args); err != nil {
		t.Fatal(err)
	}
	invocation{where: "Dockerfile", args: args}.check(t)
}

func readEnvNames(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if name, _, ok := strings.Cut(line, "="); ok && !strings.Contains(name, " ") && name != "" {
			names = append(names, name)
		}
	}
	return names
}
