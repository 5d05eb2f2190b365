package main

import (
	"strings"
	"time"

	"github.com/imcall/b2bua/provision"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/stores"
	"github.com/spf13/cobra"
)

func newTrunkCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "trunk", Short: "Manage trunks: the address ranges telephone-network calls arrive from"}
	cmd.AddCommand(newTrunkAddCmd(opts), newTrunkListCmd(opts), newTrunkRemoveCmd(opts))
	return cmd
}

func newTrunkAddCmd(opts *rootOptions) *cobra.Command {
	var cidrs string
	req := provision.TrunkRequest{}
	cmd := &cobra.Command{
		Use:   "add NAME --cidr CIDR[,CIDR...] [--country-code CC] [--identity pai|from]",
		Short: "Add a trunk; requests from its ranges are telephone-network calls, never challenged",
		Args:  args("NAME"),
	}
	f := cmd.Flags()
	f.StringVar(&cidrs, "cidr", "", "comma-separated address ranges the trunk sends from (required)")
	f.StringVar(&req.CountryCode, "country-code", "", "country code that makes the trunk's national numbers E.164, e.g. 1")
	f.StringVar(&req.Identity, "identity", "pai", "where the caller is taken from: pai (P-Asserted-Identity, else From) or from")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if err := requireFlag(cmd, "cidr"); err != nil {
			return err
		}
		req.Name, req.CIDRs = a[0], strings.Split(cidrs, ",")
		t, err := req.Trunk()
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			_, err := st.AddTrunk(cmd.Context(), t)
			return err
		})
	}
	return cmd
}

func newTrunkListCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "list [--output json]", Short: "List trunks", Args: args()}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		out, err := output()
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			ts, err := st.Trunks(cmd.Context())
			if err != nil {
				return err
			}
			l := provision.NewTrunkList(ts)
			rows := [][]string{}
			for _, t := range l.Trunks {
				rows = append(rows, []string{t.Name, strings.Join(t.CIDRs, ","), dash(t.CountryCode), t.Identity})
			}
			return render(cmd.OutOrStdout(), out, l, []string{"NAME", "CIDRS", "COUNTRY CODE", "IDENTITY"}, rows)
		})
	}
	return cmd
}

func newTrunkRemoveCmd(opts *rootOptions) *cobra.Command {
	return keyCmd(opts, &cobra.Command{Use: "remove NAME", Short: "Remove a trunk", Args: args("NAME")},
		registry.ParseTrunkName, stores.Store.RemoveTrunk)
}

func newDIDCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "did", Short: "Manage DIDs: phone numbers that belong to users"}
	cmd.AddCommand(newDIDAddCmd(opts), newDIDListCmd(opts), newDIDRemoveCmd(opts))
	return cmd
}

func newDIDAddCmd(opts *rootOptions) *cobra.Command {
	req := provision.DIDRequest{}
	cmd := &cobra.Command{
		Use:   "add +E164 --im IMID [--fallback none|terminal]",
		Short: "Give a phone number to a user; a number has one owner",
		Args:  args("NUMBER"),
	}
	cmd.Flags().StringVar(&req.IMID, "im", "", "IM ID of the number's owner (required)")
	cmd.Flags().StringVar(&req.Fallback, "fallback", "none", "with no client logged in: none (480 and a missed-call notice) or terminal (the user's active legacy terminal)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if err := requireFlag(cmd, "im"); err != nil {
			return err
		}
		req.Number = a[0]
		d, err := req.DID()
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			_, err := st.AddDID(cmd.Context(), d)
			return err
		})
	}
	return cmd
}

func newDIDListCmd(opts *rootOptions) *cobra.Command {
	var im string
	cmd := &cobra.Command{Use: "list [--im IMID] [--output json]", Short: "List numbers, of one user or of all", Args: args()}
	cmd.Flags().StringVar(&im, "im", "", "only the numbers of this IM ID")
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		out, err := output()
		if err != nil {
			return err
		}
		im, err := imFilter(cmd, im)
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			ds, err := st.DIDs(cmd.Context(), im)
			if err != nil {
				return err
			}
			l := provision.NewDIDList(ds)
			rows := [][]string{}
			for _, d := range l.DIDs {
				rows = append(rows, []string{d.Number, d.IMID, d.Fallback})
			}
			return render(cmd.OutOrStdout(), out, l, []string{"NUMBER", "IM ID", "FALLBACK"}, rows)
		})
	}
	return cmd
}

func newDIDRemoveCmd(opts *rootOptions) *cobra.Command {
	return keyCmd(opts, &cobra.Command{Use: "remove +E164", Short: "Free a number", Args: args("NUMBER")},
		registry.ParseE164, stores.Store.RemoveDID)
}

func newClientCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Show the clients users are logged in on (live SIP registrations)"}
	cmd.AddCommand(newClientListCmd(opts))
	return cmd
}

func newClientListCmd(opts *rootOptions) *cobra.Command {
	var im string
	cmd := &cobra.Command{Use: "list --im IMID [--output json]", Short: "List where a user is logged in now", Args: args()}
	cmd.Flags().StringVar(&im, "im", "", "IM ID of the user (required)")
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := requireFlag(cmd, "im"); err != nil {
			return err
		}
		out, err := output()
		if err != nil {
			return err
		}
		im, err := registry.ParseIMID(im)
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			// Bindings answers an unknown user with an empty list; here a
			// typo must say so.
			if _, err := st.User(cmd.Context(), im); err != nil {
				return err
			}
			now := time.Now()
			bs, err := st.Bindings(cmd.Context(), im, now)
			if err != nil {
				return err
			}
			l := provision.NewClientList(bs)
			rows := [][]string{}
			for _, c := range l.Clients {
				left := c.ExpiresAt.Sub(now).Round(time.Second)
				rows = append(rows, []string{dash(c.Instance), c.Contact, dash(c.Source), dash(c.Transport), left.String()})
			}
			return render(cmd.OutOrStdout(), out, l, []string{"INSTANCE", "CONTACT", "SOURCE", "TRANSPORT", "EXPIRES IN"}, rows)
		})
	}
	return cmd
}
