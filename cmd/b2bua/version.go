package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/imcall/b2bua/daemon"
)

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print the build: version, commit, commit time, Go toolchain",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := daemon.BuildVersion()
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(v)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), v.String())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print it as GET /version does")
	return cmd
}
