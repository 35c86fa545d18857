// Command ghlflow runs the ghlflow polling trigger engine, its simulator of
// the HighLevel and referral-app APIs, and the tools around its catalog and
// recipes. Each command lives in its own file; main only dispatches.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: its one-line help and its entry point, which
// gets the arguments after the command name and returns the exit code.
type command struct {
	help string
	run  func(ctx context.Context, args []string) int
}

func commands() map[string]command {
	cmds := map[string]command{
		"catalog": {"list and show the operations of the catalog", runCatalog},
		"recipe":  {"lint recipe files against the catalog", runRecipe},
		"schema":  {"print the JSON Schema of recipe files", runSchema},
		"sim":     {"run the simulator of the GHL API and the referral apps", runSim},
		"connect": {"add a connection (OAuth install or token) from a terminal", runConnect},
		"tenant":  {"add, list, label, pause and remove the tenants recipes run for", runTenant},
	}
	for _, r := range roles {
		cmds[r.name] = command{r.help, roleCommand(r)}
	}
	return cmds
}

func main() {
	cmds := commands()
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(cmds)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "ghlflow: unknown command %q\n\n", os.Args[1])
		usage(cmds)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cmd.run(ctx, os.Args[2:])
	stop()
	os.Exit(code)
}

func usage(cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for name := range cmds {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: ghlflow COMMAND [flags]\n\ncommands:")
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", name, cmds[name].help)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'ghlflow COMMAND -h' for a command's flags.")
}
