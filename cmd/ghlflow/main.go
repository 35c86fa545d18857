// Command ghlflow runs the ghlflow polling trigger engine, its simulator of
// the HighLevel and referral-app APIs, and the tools around its catalog and
// recipes. Each command lives in its own file, with its own flags; cli.go
// dispatches and prints help.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, root(), "ghlflow", os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
