package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/imcall/b2bua/provision"
	"github.com/imcall/b2bua/qrcard"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/stores"
	"github.com/spf13/cobra"
)

func newContactCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "contact", Short: "Manage users' address books"}
	cmd.AddCommand(newContactImportCmd(opts), newContactListCmd(opts))
	return cmd
}

// parseOwner validates --owner, reporting it under its own name.
func parseOwner(cmd *cobra.Command, owner string) (string, error) {
	if err := requireFlag(cmd, "owner"); err != nil {
		return "", err
	}
	id, err := registry.ParseIMID(owner)
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		return "", &registry.ValidationError{Field: "owner", Rule: ve.Rule}
	}
	return id, nil
}

func newContactImportCmd(opts *rootOptions) *cobra.Command {
	var owner, qr string
	cmd := &cobra.Command{
		Use:   "import --owner IMID --qr FILE.png",
		Short: "Add the terminal a QR code picture shows to a user's contacts and print the contact's ID",
		Args:  args(),
	}
	cmd.Flags().StringVar(&owner, "owner", "", "IM ID whose address book gets the contact (required)")
	cmd.Flags().StringVar(&qr, "qr", "", "PNG (or JPEG) picture of a terminal's QR code (required)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		owner, err := parseOwner(cmd, owner)
		if err != nil {
			return err
		}
		if err := requireFlag(cmd, "qr"); err != nil {
			return err
		}
		f, err := os.Open(qr)
		if err != nil {
			return &registry.ValidationError{Field: "qr", Rule: "must be a readable file: " + err.Error()}
		}
		card, err := qrcard.Decode(f)
		f.Close()
		if err != nil {
			return err
		}
		c, err := registry.ValidateContact(card.Contact(owner))
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			c, err := st.AddContact(cmd.Context(), c)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), c.ID)
			return err
		})
	}
	return cmd
}

func newContactListCmd(opts *rootOptions) *cobra.Command {
	var owner string
	cmd := &cobra.Command{Use: "list --owner IMID [--output json]", Short: "List a user's contacts", Args: args()}
	cmd.Flags().StringVar(&owner, "owner", "", "IM ID whose address book to list (required)")
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		out, err := output()
		if err != nil {
			return err
		}
		owner, err := parseOwner(cmd, owner)
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			cs, err := st.Contacts(cmd.Context(), owner)
			if err != nil {
				return err
			}
			rows := [][]string{}
			for _, c := range cs {
				mid := "-"
				if !c.MobileID.IsZero() {
					mid = c.MobileID.String()
				}
				rows = append(rows, []string{fmt.Sprint(c.ID), c.IMID, dash(c.Domain), mid, dash(c.Display)})
			}
			return render(cmd.OutOrStdout(), out, provision.NewContactList(cs), []string{"ID", "IM ID", "DOMAIN", "MOBILE ID", "DISPLAY"}, rows)
		})
	}
	return cmd
}
