package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newServeCmd is a placeholder until the daemon lands: it lets the CLI build.
func newServeCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the B2BUA",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New("serve: not available in this build")
		},
	}
}
