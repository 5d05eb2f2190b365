package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/imcall/b2bua/provision"
	"github.com/imcall/b2bua/qrcard"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/stores"
	"github.com/spf13/cobra"
)

func newTerminalCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "terminal", Short: "Manage users' terminals"}
	cmd.AddCommand(newTerminalAddCmd(opts), newTerminalListCmd(opts), newTerminalShowCmd(opts),
		newTerminalSetActiveCmd(opts, true), newTerminalSetActiveCmd(opts, false),
		newTerminalRemoveCmd(opts), newTerminalQRCmd(opts))
	return cmd
}

func newTerminalAddCmd(opts *rootOptions) *cobra.Command {
	var (
		im, caps string
		req      provision.TerminalRequest
	)
	cmd := &cobra.Command{
		Use:   "add --im IMID (--imsi DIGITS | --mac ADDR | --msisdn +E164) [--kind legacy|smart] [--caps audio,text,image,video] [--active]",
		Short: "Add a terminal to a user and print its ID",
		Args:  args(),
	}
	f := cmd.Flags()
	f.StringVar(&im, "im", "", "IM ID of the terminal's user (required)")
	f.StringVar(&req.IMSI, "imsi", "", "IMSI: 6 to 15 digits")
	f.StringVar(&req.MAC, "mac", "", "MAC address (EUI-48, any common notation)")
	f.StringVar(&req.MSISDN, "msisdn", "", "MSISDN in E.164, with its leading +")
	f.StringVar(&req.Kind, "kind", "legacy", "legacy (located through the SCP) or smart (registers over SIP)")
	f.StringVar(&caps, "caps", "audio", "comma-separated capabilities: audio, text, image, video")
	f.BoolVar(&req.Active, "active", false, "make it the user's active terminal (deactivates the others)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := requireFlag(cmd, "im"); err != nil {
			return err
		}
		// An empty --imsi "" counts as given, so that it is reported as a
		// bad IMSI rather than as a missing identity.
		for _, f := range []struct {
			name  string
			parse func(string) (registry.MobileID, error)
		}{{"imsi", registry.ParseIMSI}, {"mac", registry.ParseMAC}, {"msisdn", registry.ParseMSISDN}} {
			if v := cmd.Flags().Lookup(f.name).Value.String(); cmd.Flags().Changed(f.name) && strings.TrimSpace(v) == "" {
				_, err := f.parse(v)
				return err
			}
		}
		req.Caps = strings.Split(caps, ",")
		nt, err := req.NewTerminal(im)
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			t, err := st.AddTerminal(cmd.Context(), nt)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), t.ID)
			return err
		})
	}
	return cmd
}

func terminalRows(ts []registry.Terminal) [][]string {
	rows := [][]string{}
	for _, t := range ts {
		active := "no"
		if t.Active {
			active = "yes"
		}
		rows = append(rows, []string{strconv.FormatInt(t.ID, 10), t.IMID, t.MobileID.String(), string(t.Kind), t.Caps.String(), active})
	}
	return rows
}

var terminalHeader = []string{"ID", "IM ID", "MOBILE ID", "KIND", "CAPS", "ACTIVE"}

func newTerminalListCmd(opts *rootOptions) *cobra.Command {
	var im string
	cmd := &cobra.Command{Use: "list [--im IMID] [--output json]", Short: "List terminals, of one user or of all", Args: args()}
	cmd.Flags().StringVar(&im, "im", "", "only the terminals of this IM ID")
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
			ts, err := st.Terminals(cmd.Context(), im)
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), out, provision.NewTerminalList(ts), terminalHeader, terminalRows(ts))
		})
	}
	return cmd
}

func newTerminalShowCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "show ID [--output json]", Short: "Show one terminal", Args: args("ID")}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		out, err := output()
		if err != nil {
			return err
		}
		id, err := provision.ParseTerminalID(a[0])
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			t, err := st.Terminal(cmd.Context(), id)
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), out, provision.NewTerminalView(t), terminalHeader, terminalRows([]registry.Terminal{t}))
		})
	}
	return cmd
}

func newTerminalSetActiveCmd(opts *rootOptions, active bool) *cobra.Command {
	cmd := &cobra.Command{Use: "deactivate ID", Short: "Deactivate a terminal", Args: args("ID")}
	set := stores.Store.Deactivate
	if active {
		cmd.Use, cmd.Short = "activate ID", "Make a terminal its user's active one, deactivating the others"
		set = stores.Store.Activate
	}
	return keyCmd(opts, cmd, provision.ParseTerminalID, func(st stores.Store, ctx context.Context, id int64) error {
		_, err := set(st, ctx, id)
		return err
	})
}

func newTerminalRemoveCmd(opts *rootOptions) *cobra.Command {
	return keyCmd(opts, &cobra.Command{Use: "remove ID", Short: "Remove a terminal", Args: args("ID")},
		provision.ParseTerminalID, stores.Store.RemoveTerminal)
}

func newTerminalQRCmd(opts *rootOptions) *cobra.Command {
	var (
		png    string
		size   int
		invert bool
	)
	cmd := &cobra.Command{
		Use:   "qr ID [--png FILE]",
		Short: "Show a terminal's identity as a QR code, in the terminal or as a PNG file",
		Args:  args("ID"),
	}
	cmd.Flags().StringVar(&png, "png", "", "write a PNG file instead of drawing in the terminal")
	cmd.Flags().IntVar(&size, "size", 512, "PNG width and height in pixels (64 to 4096)")
	cmd.Flags().BoolVar(&invert, "invert", false, "swap dark and light, for terminals with light text on a dark background")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		id, err := provision.ParseTerminalID(a[0])
		if err != nil {
			return err
		}
		if size < 64 || size > 4096 {
			return &registry.ValidationError{Field: "size", Rule: "must be 64 to 4096 pixels"}
		}
		if cmd.Flags().Changed("png") && png == "" {
			return &registry.ValidationError{Field: "png", Rule: "must name a file"}
		}
		domain, err := registry.ParseDomain(opts.Domain)
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			t, err := st.Terminal(cmd.Context(), id)
			if err != nil {
				return err
			}
			u, err := st.User(cmd.Context(), t.IMID)
			if err != nil {
				return err
			}
			card := qrcard.Card{IMID: t.IMID, Domain: domain, MobileID: t.MobileID, Kind: t.Kind, Display: u.Display}
			if png == "" {
				return qrcard.WriteTerminal(cmd.OutOrStdout(), card, invert)
			}
			b, err := qrcard.EncodePNG(card, size)
			if err != nil {
				return err
			}
			return writeFileAtomic(png, b)
		})
	}
	return cmd
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory and a rename, so that an interrupted write leaves no truncated
// picture behind.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("png: %w", err)
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("png: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("png: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("png: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("png: %w", err)
	}
	return nil
}
