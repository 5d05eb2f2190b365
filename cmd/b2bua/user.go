package main

import (
	"bufio"
	"io"
	"strings"

	"github.com/imcall/b2bua/provision"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/stores"
	"github.com/spf13/cobra"
)

func newUserCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage IM users"}
	cmd.AddCommand(newUserAddCmd(opts), newUserListCmd(opts), newUserRemoveCmd(opts), newUserPasswdCmd(opts))
	return cmd
}

// readPassword reads the password from the first line of stdin: never from
// an argument, where it would show in ps and in shell history.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return provision.ParsePassword(strings.TrimRight(line, "\r\n"))
}

func passwordStdinFlag(cmd *cobra.Command) func() error {
	stdin := cmd.Flags().Bool("password-stdin", false, "read the password from the first line of standard input (required)")
	return func() error {
		if !*stdin {
			return &registry.ValidationError{Field: "password", Rule: "must be given on standard input with --password-stdin"}
		}
		return nil
	}
}

func newUserAddCmd(opts *rootOptions) *cobra.Command {
	var display string
	cmd := &cobra.Command{
		Use:   "add IMID --password-stdin [--display NAME]",
		Short: "Add a user; the password is read from standard input",
		Args:  args("IMID"),
	}
	checkStdin := passwordStdinFlag(cmd)
	cmd.Flags().StringVar(&display, "display", "", "display name")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		realm, err := opts.realm()
		if err != nil {
			return err
		}
		req := provision.UserRequest{IMID: a[0], Display: display}
		// Validate what the command line holds before reading stdin, so a
		// typo is reported before the password is asked for.
		if _, err := registry.ValidateUser(registry.User{IMID: req.IMID, Display: req.Display}); err != nil {
			return err
		}
		if err := checkStdin(); err != nil {
			return err
		}
		if req.Password, err = readPassword(cmd.InOrStdin()); err != nil {
			return err
		}
		u, err := req.User(realm)
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			_, err := st.AddUser(cmd.Context(), u)
			return err
		})
	}
	return cmd
}

func newUserListCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "list [--output json]", Short: "List users", Args: args()}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		out, err := output()
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			us, err := st.Users(cmd.Context())
			if err != nil {
				return err
			}
			rows := [][]string{}
			for _, u := range us {
				rows = append(rows, []string{u.IMID, dash(u.Display), dash(u.Creds.Realm)})
			}
			return render(cmd.OutOrStdout(), out, provision.NewUserList(us), []string{"IM ID", "DISPLAY", "REALM"}, rows)
		})
	}
	return cmd
}

func newUserRemoveCmd(opts *rootOptions) *cobra.Command {
	return keyCmd(opts, &cobra.Command{Use: "remove IMID", Short: "Remove a user with its terminals and contacts", Args: args("IMID")},
		registry.ParseIMID, stores.Store.RemoveUser)
}

func newUserPasswdCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "passwd IMID --password-stdin",
		Short: "Set a user's password, read from standard input",
		Args:  args("IMID"),
	}
	checkStdin := passwordStdinFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		realm, err := opts.realm()
		if err != nil {
			return err
		}
		im, err := registry.ParseIMID(a[0])
		if err != nil {
			return err
		}
		if err := checkStdin(); err != nil {
			return err
		}
		pw, err := readPassword(cmd.InOrStdin())
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			return st.SetCredentials(cmd.Context(), im, registry.NewCredentials(im, realm, pw))
		})
	}
	return cmd
}
