// Package config fills a command's flags from three places, in this order
// of precedence: the command line, GHLFLOW_* environment variables, and an
// optional YAML file. A flag named poll-concurrency is read from
// GHLFLOW_POLL_CONCURRENCY and from the file's key poll-concurrency (or
// poll_concurrency); the defaults of the flag set apply last.
package config

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the environment variable of every flag.
const EnvPrefix = "GHLFLOW_"

// Repeatable is a flag value that takes several values (--recipes a
// --recipes b): its environment variable lists them separated by commas,
// its file key as a YAML list.
type Repeatable interface {
	flag.Value
	Repeatable()
}

// Source says where the configuration comes from.
type Source struct {
	// File is the YAML file ("" for none).
	File string
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// Aliases are further environment variables of a flag, read after
	// its GHLFLOW_ one (REDIS_URL for redis).
	Aliases map[string][]string
}

// EnvName is the environment variable of flag name: GHLFLOW_ and the name
// in capitals with - as _.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Apply sets every flag of fs that the command line left alone from the
// environment, then from the file. fs must be parsed. A file key that
// names no flag is an error, as is a value the flag refuses.
func Apply(fs *flag.FlagSet, src Source) error {
	getenv := src.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	file, err := readFile(fs, src.File)
	if err != nil {
		return err
	}
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		fromEnvironment, err := fromEnv(f, getenv, src.Aliases[f.Name])
		if err != nil {
			errs = append(errs, err.Error())
			return
		}
		if v, ok := file[f.Name]; ok && !fromEnvironment {
			if err := setAll(f, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %s: %v", src.File, f.Name, err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

// fromEnv sets f from the first of its environment variables that is set,
// and says whether one was.
func fromEnv(f *flag.Flag, getenv func(string) string, aliases []string) (bool, error) {
	for _, name := range append([]string{EnvName(f.Name)}, aliases...) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			continue
		}
		values := []string{v}
		if _, ok := f.Value.(Repeatable); ok {
			values = strings.Split(v, ",")
		}
		for _, one := range values {
			if err := f.Value.Set(strings.TrimSpace(one)); err != nil {
				return true, fmt.Errorf("%s=%q: %v", name, v, err)
			}
		}
		return true, nil
	}
	return false, nil
}

func setAll(f *flag.Flag, values []string) error {
	if _, ok := f.Value.(Repeatable); !ok && len(values) > 1 {
		return fmt.Errorf("one value expected, got a list")
	}
	for _, v := range values {
		if err := f.Value.Set(v); err != nil {
			return err
		}
	}
	return nil
}

// readFile reads the YAML file into flag name -> values; keys may use _
// for -.
func readFile(fs *flag.FlagSet, path string) (map[string][]string, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	var raw map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	out := make(map[string][]string, len(raw))
	var unknown []string
	for key, node := range raw {
		name := strings.ReplaceAll(key, "_", "-")
		if fs.Lookup(name) == nil {
			unknown = append(unknown, fmt.Sprintf("%s (line %d)", key, node.Line))
			continue
		}
		switch node.Kind {
		case yaml.ScalarNode:
			out[name] = []string{node.Value}
		case yaml.SequenceNode:
			for _, item := range node.Content {
				if item.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("configuration %s:%d: %s: a list of values expected", path, item.Line, key)
				}
				out[name] = append(out[name], item.Value)
			}
		default:
			return nil, fmt.Errorf("configuration %s:%d: %s: a value or a list expected", path, node.Line, key)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("configuration %s: unknown settings: %s", path, strings.Join(unknown, ", "))
	}
	return out, nil
}
