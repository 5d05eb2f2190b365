// Command scpsim is the SCP simulator: it answers "where is this terminal"
// over the HTTP SCP protocol (scp/openapi.yaml) from subscriber state an
// operator controls with its subscriber commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/imcall/b2bua/registry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status: 0 on success,
// 2 for a bad argument, 1 for any other failure.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := newRootCmd(stdout, stderr, getenv)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "scpsim:", err)
	var ue *usageError
	var ve *registry.ValidationError
	if errors.As(err, &ue) || errors.As(err, &ve) {
		return 2
	}
	return 1
}

// usageError marks a command line that is wrong as written.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }
