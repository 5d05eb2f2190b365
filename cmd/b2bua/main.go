// Command b2bua is the SIP back-to-back user agent that lets IM users call
// legacy phones, and its administration CLI.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "b2bua:", err)
		os.Exit(1)
	}
}
