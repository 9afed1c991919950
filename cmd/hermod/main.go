// Command hermod is the Hermod SMS server and its administration tool.
//
// With no configuration, `hermod run` keeps its messages in hermod.db in the
// working directory and sends them through a simulator channel; applications
// send a text message by inserting a row into Messages. See README.md and
// docs/configuration.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := newApp(os.Stdout, os.Stderr, os.Getenv, "").Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
