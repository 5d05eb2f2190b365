package main

import "github.com/spf13/cobra"

func newRootCmd() *cobra.Command {
	return &cobra.Command{Use: "b2bua", SilenceUsage: true, SilenceErrors: true}
}
