package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/stores"
	"github.com/spf13/cobra"
)

// Defaults of the global flags; the environment variables override them and
// the flags override both.
const (
	defaultDB     = "./b2bua.db"
	defaultDomain = "127.0.0.1"
)

// rootOptions are the global flags every command shares, serve included.
type rootOptions struct {
	// DBPath is the registry store: a SQLite file, or a spec such as
	// sqlite:PATH (see registry/stores) (--db, B2BUA_DB).
	DBPath string
	// Domain is the IM domain: the host part of sip:<im-id>@<domain>, and
	// the digest realm new credentials are made for (--domain, B2BUA_DOMAIN).
	Domain string
}

// openStore opens the registry the global flags name. Commands call it only
// after every argument has been validated, so a bad argument never touches
// the database.
func (o *rootOptions) openStore(ctx context.Context) (stores.Store, error) {
	return stores.Open(ctx, o.DBPath, stores.Options{})
}

// realm validates the --domain flag for use as a digest realm.
func (o *rootOptions) realm() (string, error) {
	d, err := registry.ParseDomain(o.Domain)
	if err != nil {
		return "", err
	}
	if d == "" {
		return "", &registry.ValidationError{Field: "domain", Rule: "must not be empty"}
	}
	return d, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newRootCmd() *cobra.Command {
	opts := &rootOptions{}
	root := &cobra.Command{
		Use:   "b2bua",
		Short: "SIP back-to-back user agent that lets IM users call legacy phones",
		// Errors are printed once, as one line, by main; usage text would
		// bury the line that says what is wrong.
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&opts.DBPath, "db", envOr("B2BUA_DB", defaultDB), "registry: a SQLite file, or sqlite:PATH (env B2BUA_DB)")
	root.PersistentFlags().StringVar(&opts.Domain, "domain", envOr("B2BUA_DOMAIN", defaultDomain), "IM domain and digest realm (env B2BUA_DOMAIN)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	root.AddCommand(newUserCmd(opts), newTerminalCmd(opts), newContactCmd(opts), newTrunkCmd(opts), newDIDCmd(opts),
		newClientCmd(opts), newServeCmd(opts), newConferenceCmd(opts))
	return root
}

// usageError is a mistake in how a command was called, reported on one line
// that points at the command's help.
func usageError(cmd *cobra.Command, what string) error {
	return fmt.Errorf("%s (see '%s --help')", what, cmd.CommandPath())
}

// args requires exactly the named positional arguments.
func args(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		switch {
		case len(a) < len(names):
			return usageError(cmd, names[len(a)]+": argument is required")
		case len(a) > len(names):
			return usageError(cmd, fmt.Sprintf("arguments: unexpected %q", a[len(names)]))
		}
		return nil
	}
}

// requireFlag reports a missing required flag the way every other argument
// error is reported.
func requireFlag(cmd *cobra.Command, name string) error {
	if !cmd.Flags().Changed(name) {
		return usageError(cmd, name+": --"+name+" is required")
	}
	return nil
}

// outputFlag adds --output to cmd and returns a function that validates it.
func outputFlag(cmd *cobra.Command) func() (string, error) {
	out := cmd.Flags().StringP("output", "o", "table", "output format: table or json")
	return func() (string, error) {
		switch *out {
		case "table", "json":
			return *out, nil
		}
		return "", &registry.ValidationError{Field: "output", Rule: "must be table or json"}
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows as aligned columns under a header.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// dash shows an empty value in a table as "-" so columns stay readable.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
