package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine/redisconn"
)

// runFunc is a command's entry point: it gets the positional arguments left
// after its flags and returns the exit code.
type runFunc func(ctx context.Context, args []string) int

// command is one command or subcommand of ghlflow. A command either runs
// (setup is set) or groups subcommands (subs is set).
type command struct {
	name    string
	summary string // one line, for the list of commands
	args    string // the synopsis of its positional arguments, e.g. "PATH..."
	details string // more help after the summary; may be empty
	// setup registers the command's own flags on fs and returns the
	// function that runs it with their values.
	setup func(fs *flag.FlagSet) runFunc
	subs  []*command
	// dflt is the subcommand run when the first argument is a flag (with
	// no argument at all a group prints its usage).
	dflt string
}

// root is the command tree of ghlflow.
func root() *command {
	subs := []*command{
		apikeyCommand(os.Stdout, os.Stderr),
		benchCommand(),
		catalogCommand(),
		connectCommand(),
		recipeCommand(),
		schemaCommand(),
		simCommand(),
		tenantCommand(os.Stdout, os.Stderr),
	}
	subs = append(subs, roleCommands()...)
	subs = append(subs, &command{name: "version", summary: "print the version and the source revision", setup: func(*flag.FlagSet) runFunc {
		return func(context.Context, []string) int { fmt.Println(versionText()); return 0 }
	}})
	return &command{name: "ghlflow", summary: "a polling trigger engine for HighLevel and the referral apps", subs: subs}
}

// execute runs cmd, called as path, with args. Help goes to stdout with exit
// 0; usage errors go to stderr with exit 2.
func execute(ctx context.Context, cmd *command, path string, args []string, stdout, stderr io.Writer) int {
	if cmd.subs != nil {
		return executeGroup(ctx, cmd, path, args, stdout, stderr)
	}
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	run := cmd.setup(fs)
	fs.Usage = func() {} // help and errors are printed below
	// Flags may come before or after positional arguments.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printLeafUsage(stdout, cmd, path, fs)
				return 0
			}
			fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for its usage.\n", path, err, path)
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		if len(args) > fs.NArg() && args[len(args)-fs.NArg()-1] == "--" {
			positional = append(positional, fs.Args()...) // everything after -- is positional
			break
		}
		positional, args = append(positional, fs.Arg(0)), fs.Args()[1:]
	}
	return run(ctx, positional)
}

func executeGroup(ctx context.Context, cmd *command, path string, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printGroupUsage(stderr, cmd, path)
		return 2
	}
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			printGroupUsage(stdout, cmd, path)
			return 0
		case "-version", "--version":
			if cmd.name == "ghlflow" {
				fmt.Fprintln(stdout, versionText())
				return 0
			}
		}
	}
	name := cmd.dflt
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if name == "" {
		fmt.Fprintf(stderr, "%s: unknown flag %s\nRun '%s --help' for its usage.\n", path, args[0], path)
		return 2
	}
	for _, sub := range cmd.subs {
		if sub.name == name {
			return execute(ctx, sub, path+" "+name, args, stdout, stderr)
		}
	}
	what := "subcommand"
	if cmd.name == "ghlflow" {
		what = "command"
	}
	msg := fmt.Sprintf("%s: unknown %s %q", path, what, name)
	names := make([]string, len(cmd.subs))
	for i, sub := range cmd.subs {
		names[i] = sub.name
	}
	if s := catalog.Closest(name, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	fmt.Fprintf(stderr, "%s\nRun '%s --help' for its %ss.\n", msg, path, what)
	return 2
}

func printGroupUsage(w io.Writer, cmd *command, path string) {
	fmt.Fprintf(w, "usage: %s COMMAND [flags] [arguments]\n\n%s.\n\nCommands:\n", path, capitalize(cmd.summary))
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, sub := range cmd.subs {
		name := sub.name
		if sub.name == cmd.dflt {
			name += " (default)"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, sub.summary)
	}
	tw.Flush()
	if cmd.details != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.details))
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for the flags of a command.\n", path)
}

func printLeafUsage(w io.Writer, cmd *command, path string, fs *flag.FlagSet) {
	synopsis := path
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		synopsis += " [flags]"
	}
	if cmd.args != "" {
		synopsis += " " + cmd.args
	}
	fmt.Fprintf(w, "usage: %s\n\n%s.\n", synopsis, capitalize(cmd.summary))
	if cmd.details != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.details))
	}
	if hasFlags {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// versionText is the module version and the source revision the binary was
// built from, as the Go toolchain recorded them.
func versionText() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "ghlflow (no build information)"
	}
	v := "ghlflow " + info.Main.Version
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		v += " (" + rev
		if t := settings["vcs.time"]; t != "" {
			v += ", " + t
		}
		if settings["vcs.modified"] == "true" {
			v += ", modified"
		}
		v += ")"
	}
	return v + " " + info.GoVersion
}

// Redis is reached through one --redis URL everywhere: REDIS_URL, else the
// address in REDIS_ADDR, else the local default.
const defaultRedisURL = "redis://127.0.0.1:6379/0"

// redisFlag registers --redis on fs, into p.
func redisFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "redis", defaultRedis(), "Redis URL: redis://[user:password@]host:port/db, rediss://, redis-sentinel://HOST:PORT,.../MASTER, redis-cluster://HOST:PORT,...; env REDIS_URL, or REDIS_ADDR as host:port")
}

func defaultRedis() string {
	if v := strings.TrimSpace(os.Getenv("REDIS_URL")); v != "" {
		return v
	}
	if v := strings.TrimSpace(os.Getenv("REDIS_ADDR")); v != "" {
		return "redis://" + v + "/0"
	}
	return defaultRedisURL
}

// parseRedis reads a --redis value: any URL redisconn reads (redis://,
// rediss://, redis-sentinel://, redis-cluster://), or a bare host:port.
func parseRedis(s string) (*redisconn.Options, error) {
	if !strings.Contains(s, "://") {
		s = "redis://" + s
	}
	o, err := redisconn.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--redis: %w", err)
	}
	return o, nil
}

// dialRedis returns a client of the Redis a --redis value names; the
// caller closes it.
func dialRedis(s string) (redis.UniversalClient, error) {
	o, err := parseRedis(s)
	if err != nil {
		return nil, err
	}
	return o.Client(), nil
}
