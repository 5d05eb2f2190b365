// Command b2bua is the SIP back-to-back user agent that lets IM users call
// legacy phones, and its administration CLI.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
)

func main() {
	if err := newRootCmd().ExecuteContext(context.Background()); err != nil {
		// One line, always: scripts read the first line of stderr, and a
		// wrapped error from a lower layer must not break that.
		msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
		fmt.Fprintln(os.Stderr, "b2bua:", msg)
		os.Exit(1)
	}
}
