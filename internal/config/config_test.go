package config

import (
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }
func (l *list) Repeatable()        {}

type settings struct {
	poll, chain int
	redis, logf string
	recipes     list
}

func flags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&s.poll, "poll-concurrency", 8, "")
	fs.IntVar(&s.chain, "chain-concurrency", 16, "")
	fs.StringVar(&s.redis, "redis", "redis://default:6379/0", "")
	fs.StringVar(&s.logf, "log-format", "text", "")
	fs.Var(&s.recipes, "recipes", "")
	return fs
}

// TestPrecedence shows the order: command line, then GHLFLOW_* (and the
// aliases), then the file, then the defaults.
func TestPrecedence(t *testing.T) {
	file := filepath.Join("testdata", "worker.yaml")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want settings
	}{
		{name: "defaults", want: settings{poll: 8, chain: 16, redis: "redis://default:6379/0", logf: "text"}},
		{name: "file", file: file, want: settings{poll: 4, chain: 32, redis: "redis://file:6379/0", logf: "json", recipes: list{"a.yaml", "b.yaml"}}},
		{name: "env over file", file: file,
			env:  map[string]string{"GHLFLOW_POLL_CONCURRENCY": "6", "REDIS_URL": "redis://alias:6379/0", "GHLFLOW_RECIPES": "c.yaml,d.yaml"},
			want: settings{poll: 6, chain: 32, redis: "redis://alias:6379/0", logf: "json", recipes: list{"c.yaml", "d.yaml"}}},
		{name: "GHLFLOW_ over alias", env: map[string]string{"GHLFLOW_REDIS": "redis://mine:6379/0", "REDIS_URL": "redis://alias:6379/0"},
			want: settings{poll: 8, chain: 16, redis: "redis://mine:6379/0", logf: "text"}},
		{name: "flags over env and file", file: file, args: []string{"--poll-concurrency", "2", "--recipes", "e.yaml", "--redis", "redis://flag:6379/0"},
			env:  map[string]string{"GHLFLOW_POLL_CONCURRENCY": "6", "GHLFLOW_CHAIN_CONCURRENCY": "64", "REDIS_URL": "redis://alias:6379/0"},
			want: settings{poll: 2, chain: 64, redis: "redis://flag:6379/0", logf: "json", recipes: list{"e.yaml"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got settings
			fs := flags(&got)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			src := Source{File: tt.file, Getenv: func(k string) string { return tt.env[k] },
				Aliases: map[string][]string{"redis": {"REDIS_URL"}}}
			if err := Apply(fs, src); err != nil {
				t.Fatal(err)
			}
			if got.poll != tt.want.poll || got.chain != tt.want.chain || got.redis != tt.want.redis || got.logf != tt.want.logf ||
				got.recipes.String() != tt.want.recipes.String() {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{name: "unknown key", file: "testdata/unknown.yaml", want: "unknown settings: poll-concurency (line 1)"},
		{name: "bad value in file", file: "testdata/bad.yaml", want: "chain-concurrency"},
		{name: "bad value in env", env: map[string]string{"GHLFLOW_POLL_CONCURRENCY": "many"}, want: `GHLFLOW_POLL_CONCURRENCY="many"`},
		{name: "missing file", file: "testdata/none.yaml", want: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s settings
			fs := flags(&s)
			_ = fs.Parse(nil)
			err := Apply(fs, Source{File: tt.file, Getenv: func(k string) string { return tt.env[k] }})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("poll-concurrency"); got != "GHLFLOW_POLL_CONCURRENCY" {
		t.Errorf("EnvName = %q", got)
	}
}
