package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestEveryCommandHelp walks every command and subcommand with -h and
// --help: exit 0, its own usage on stdout, nothing on stderr, a
// description, and exactly the flags it takes.
func TestEveryCommandHelp(t *testing.T) {
	ctx := context.Background()
	flagRe := regexp.MustCompile(`(?m)^  -(\S+)`)
	leaves := 0
	var walk func(c *command, path []string)
	walk = func(c *command, path []string) {
		name := strings.Join(path, " ")
		if c.summary == "" {
			t.Errorf("%s has no description", name)
		}
		for _, h := range []string{"-h", "--help"} {
			var stdout, stderr bytes.Buffer
			code := execute(ctx, root(), "ghlflow", append(slices.Clone(path[1:]), h), &stdout, &stderr)
			out := stdout.String()
			if code != 0 || stderr.Len() > 0 || !strings.HasPrefix(out, "usage: "+name) {
				t.Errorf("%s %s: exit %d, stdout:\n%s\nstderr:\n%s", name, h, code, out, stderr.String())
				continue
			}
			if !strings.Contains(out, capitalize(c.summary)) {
				t.Errorf("%s %s: the usage lacks its description:\n%s", name, h, out)
			}
			if c.subs != nil {
				for _, sub := range c.subs {
					if !strings.Contains(out, "  "+sub.name) {
						t.Errorf("%s %s: subcommand %s not listed:\n%s", name, h, sub.name, out)
					}
				}
				continue
			}
			fs := flag.NewFlagSet(name, flag.ContinueOnError)
			c.setup(fs)
			var want, got []string
			fs.VisitAll(func(f *flag.Flag) { want = append(want, f.Name) })
			for _, m := range flagRe.FindAllStringSubmatch(out, -1) {
				got = append(got, m[1])
			}
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: flags shown %v, want its own %v", name, h, got, want)
			}
		}
		if c.subs == nil {
			leaves++
		}
		for _, sub := range c.subs {
			walk(sub, append(slices.Clone(path), sub.name))
		}
	}
	walk(root(), []string{"ghlflow"})
	if leaves < 18 {
		t.Fatalf("walked %d commands", leaves)
	}
}

// TestCommandLine runs the binary: help that does not act, refused flags of
// other subcommands, unknown commands with a hint, the version.
func TestCommandLine(t *testing.T) {
	overlapInShort(t)
	bin := ghlflowBin(t)
	run := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}
	for _, tc := range []struct {
		args      []string
		code      int
		stdout    string // a text stdout holds
		stderr    string // a text stderr holds
		notStdout string // a text stdout must not hold
	}{
		{args: []string{"connect", "keygen", "--help"}, stdout: "usage: ghlflow connect keygen", notStdout: "="},
		{args: []string{"schema", "--help"}, stdout: "usage: ghlflow schema", notStdout: "$schema"},
		{args: []string{"catalog", "--help"}, stdout: "show"},
		{args: []string{"catalog", "show", "--help"}, stdout: "usage: ghlflow catalog show OP"},
		{args: []string{"recipe", "lint", "--help"}, stdout: "--connections"[1:]},
		{args: []string{"sim", "--help"}, stdout: "/_sim/requests"},
		{args: []string{"connect", "list", "-token-env", "X"}, code: 2, stderr: "flag provided but not defined: -token-env"},
		{args: []string{"connect", "frob"}, code: 2, stderr: `unknown subcommand "frob"`},
		{args: []string{"connect", "lsit"}, code: 2, stderr: `(did you mean "list"?)`},
		{args: []string{"recpie"}, code: 2, stderr: `unknown command "recpie" (did you mean "recipe"?)`},
		{args: []string{"catalog", "list", "--category", "nope"}, code: 2, stderr: `unknown category "nope"`},
		{args: []string{"catalog", "list", "--app", "nope"}, code: 2, stderr: `unknown app "nope"`},
		{args: []string{"run", "--recipes", "x", "--every", "0s"}, code: 2, stderr: "--every 0s: write at least 1s"},
		{args: []string{"run", "--recipes", "x", "--every", "-1m"}, code: 2, stderr: "--every -1m0s: write at least 1s"},
		{args: []string{"run", "--recipes", "x", "--every", "500ms"}, code: 2, stderr: "write at least 1s"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, code := run(tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) ||
				(tc.notStdout != "" && strings.Contains(stdout, tc.notStdout)) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
		})
	}

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	rev := ""
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			rev = s.Value
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		stdout, _, code := run(args...)
		if code != 0 || !strings.HasPrefix(stdout, "ghlflow "+info.Main.Version) || !strings.Contains(stdout, info.GoVersion) ||
			(rev != "" && !strings.Contains(stdout, "("+rev+", ")) {
			t.Fatalf("%v: exit %d: %q (module %s, revision %q)", args, code, stdout, info.Main.Version, rev)
		}
	}
	if rev != "" {
		return
	}
	// The version must name the revision; say why it cannot be checked.
	switch git, isDir := gitEntry(t); {
	case vcsErr != nil:
		t.Fatalf("the version's source revision cannot be checked: %v", vcsErr)
	case git == "":
		t.Fatal("the version's source revision cannot be checked: the source is not a git checkout (no .git above it); run the tests in a git clone")
	case isDir:
		t.Fatalf("the binary built with -buildvcs=true in the git checkout %s records no source revision: %v", filepath.Dir(git), info.Settings)
	default:
		t.Skipf("the version's source revision is not checked in a git worktree (%s is a file): the Go toolchain stamps the revision only where .git is a directory", git)
	}
}

// gitEntry is the nearest .git above the working directory, and whether
// it is a directory (a clone) rather than a file (a worktree); "" when
// there is none.
func gitEntry(t *testing.T) (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, ".git")
		if fi, err := os.Stat(p); err == nil {
			return p, fi.IsDir()
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}
