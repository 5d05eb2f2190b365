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

// withStore opens the registry the global flags name, runs fn on it and
// closes it. Commands call it only after every argument has been validated,
// so a bad argument never touches the database.
func (o *rootOptions) withStore(ctx context.Context, fn func(stores.Store) error) error {
	st, err := stores.Open(ctx, o.DBPath, stores.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
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
		newClientCmd(opts), newCallsCmd(opts), newServeCmd(opts), newConferenceCmd(opts), newVersionCmd())
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

// keyCmd completes cmd, which takes one argument, into a command that
// validates the argument with parse and hands it to do with the store open:
// remove, activate and the like.
func keyCmd[K any](opts *rootOptions, cmd *cobra.Command, parse func(string) (K, error), do func(stores.Store, context.Context, K) error) *cobra.Command {
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		k, err := parse(a[0])
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error { return do(st, cmd.Context(), k) })
	}
	return cmd
}

// imFilter validates an optional --im: not given, it is empty and means
// every user.
func imFilter(cmd *cobra.Command, im string) (string, error) {
	if !cmd.Flags().Changed("im") {
		return im, nil
	}
	return registry.ParseIMID(im)
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

// render prints a listing as out (the validated --output) asks: v as JSON,
// or header and rows as a table.
func render(w io.Writer, out string, v any, header []string, rows [][]string) error {
	if out == "json" {
		return writeJSON(w, v)
	}
	return table(w, header, rows)
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
