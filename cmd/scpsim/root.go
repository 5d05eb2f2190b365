package main

import (
	"io"

	"github.com/spf13/cobra"
)

func newRootCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:           "scpsim",
		Short:         "SCP simulator: locates terminals by IMSI, MAC or MSISDN over HTTP and CAP",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(newServeCmd(stderr, getenv), newSubscriberCmd(stdout, getenv), newDecodeCmd(stdout))
	return root
}
