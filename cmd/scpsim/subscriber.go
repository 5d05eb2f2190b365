package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/sim"
)

const defaultServer = "http://127.0.0.1:8070"

// subscriberFlags are the flags every subscriber command shares.
type subscriberFlags struct {
	server  string
	token   string // bearer token; "" : SCPSIM_TOKEN
	timeout time.Duration
	imsi    string
	mac     string
	msisdn  string
	getenv  func(string) string
}

func newSubscriberCmd(stdout io.Writer, getenv func(string) string) *cobra.Command {
	var sf subscriberFlags
	cmd := &cobra.Command{
		Use:   "subscriber",
		Short: "Change or list the subscribers of a running simulator",
		Long: `Change or list the subscribers of a running simulator: scpsim serve, or a
b2bua serve that runs the simulator in process (--server its HTTP address).`,
	}
	server := getenv("SCPSIM_SERVER")
	if server == "" {
		server = defaultServer
	}
	cmd.PersistentFlags().StringVar(&sf.server, "server", server, "URL of the simulator (env SCPSIM_SERVER)")
	// The token's default is not shown in --help: it comes from the
	// environment when the command runs.
	cmd.PersistentFlags().StringVar(&sf.token, "token", "", "bearer token of a simulator that requires one, e.g. a b2bua's provisioning API token (env SCPSIM_TOKEN)")
	sf.getenv = getenv
	cmd.PersistentFlags().DurationVar(&sf.timeout, "timeout", 5*time.Second, "how long to wait for the simulator")

	idFlags := func(f *pflag.FlagSet) {
		f.StringVar(&sf.imsi, "imsi", "", "the subscriber's IMSI (6 to 15 digits)")
		f.StringVar(&sf.mac, "mac", "", "the subscriber's MAC (EUI-48), instead of --imsi")
		f.StringVar(&sf.msisdn, "msisdn", "", "the subscriber's MSISDN (E.164 with its leading +), instead of --imsi")
	}

	var addr, state string
	attach := &cobra.Command{
		Use:   "attach (--imsi DIGITS | --mac EUI-48 | --msisdn +E164) --addr IP:PORT [--state online|busy|absent]",
		Short: "Attach a subscriber at an address (replaces an attached one)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := sf.id()
			if err != nil {
				return err
			}
			sub := sim.Subscriber{ID: id}
			if sub.State, err = parseStateArg(state); err != nil {
				return err
			}
			if addr != "" {
				if sub.Addr, err = sim.ParseAddr(addr); err != nil {
					return err
				}
			} else if sub.State == scp.Online {
				return &registry.ValidationError{Field: "addr", Rule: "is required for an online subscriber (--addr IP:PORT)"}
			}
			return sf.call(cmd.Context(), stdout, "attached", func(ctx context.Context, c *sim.Client) (sim.Subscriber, error) {
				return c.Attach(ctx, sub)
			})
		},
	}
	idFlags(attach.Flags())
	attach.Flags().StringVar(&addr, "addr", "", "where SIP reaches the terminal (IP:PORT)")
	attach.Flags().StringVar(&state, "state", "online", "online, busy or absent")

	var moveAddr string
	move := &cobra.Command{
		Use:   "move (--imsi DIGITS | --mac EUI-48 | --msisdn +E164) --addr IP:PORT",
		Short: "Give a subscriber a new address (roaming)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := sf.id()
			if err != nil {
				return err
			}
			if moveAddr == "" {
				return &registry.ValidationError{Field: "addr", Rule: "is required (--addr IP:PORT)"}
			}
			ap, err := sim.ParseAddr(moveAddr)
			if err != nil {
				return err
			}
			return sf.call(cmd.Context(), stdout, "moved", func(ctx context.Context, c *sim.Client) (sim.Subscriber, error) {
				return c.Move(ctx, id, ap)
			})
		},
	}
	idFlags(move.Flags())
	move.Flags().StringVar(&moveAddr, "addr", "", "the new address (IP:PORT)")

	setState := &cobra.Command{
		Use:   "state (--imsi DIGITS | --mac EUI-48 | --msisdn +E164) online|busy|absent",
		Short: "Set a subscriber online, busy or absent",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &registry.ValidationError{Field: "state", Rule: "give exactly one of online, busy, absent"}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := sf.id()
			if err != nil {
				return err
			}
			st, err := parseStateArg(args[0])
			if err != nil {
				return err
			}
			return sf.call(cmd.Context(), stdout, "set", func(ctx context.Context, c *sim.Client) (sim.Subscriber, error) {
				return c.SetState(ctx, id, st)
			})
		},
	}
	idFlags(setState.Flags())

	detach := &cobra.Command{
		Use:   "detach (--imsi DIGITS | --mac EUI-48 | --msisdn +E164)",
		Short: "Detach a subscriber",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := sf.id()
			if err != nil {
				return err
			}
			c, ctx, cancel, err := sf.client(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.Detach(ctx, id); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "detached", id)
			return nil
		},
	}
	idFlags(detach.Flags())

	var output string
	list := &cobra.Command{
		Use:   "list [--output text|json]",
		Short: "List the subscribers",
		Long:  "List the subscribers. --output json prints a subscribers file that scpsim serve --subscribers reads.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return &registry.ValidationError{Field: "output", Rule: "must be text or json"}
			}
			c, ctx, cancel, err := sf.client(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			subs, err := c.List(ctx)
			if err != nil {
				return err
			}
			if output == "json" {
				return sim.EncodeSubscribers(stdout, subs)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tADDR")
			for _, s := range subs {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ID, s.State, addrOrDash(s.Addr))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVarP(&output, "output", "o", "text", "text or json")

	cmd.AddCommand(attach, move, setState, detach, list)
	return cmd
}

// id validates --imsi / --mac / --msisdn before anything is sent.
func (sf *subscriberFlags) id() (string, error) {
	var id registry.MobileID
	var err error
	given := 0
	for _, v := range []string{sf.imsi, sf.mac, sf.msisdn} {
		if v != "" {
			given++
		}
	}
	switch {
	case given > 1:
		return "", &registry.ValidationError{Field: "imsi", Rule: "give one of --imsi, --mac or --msisdn"}
	case sf.imsi != "":
		id, err = registry.ParseIMSI(sf.imsi)
	case sf.mac != "":
		id, err = registry.ParseMAC(sf.mac)
	case sf.msisdn != "":
		id, err = registry.ParseMSISDN(sf.msisdn)
	default:
		return "", &registry.ValidationError{Field: "imsi", Rule: "is required (--imsi DIGITS, --mac EUI-48 or --msisdn +E164)"}
	}
	return id.String(), err
}

func (sf *subscriberFlags) client(ctx context.Context) (*sim.Client, context.Context, context.CancelFunc, error) {
	token := sf.token
	if token == "" {
		token = sf.getenv("SCPSIM_TOKEN")
	}
	c, err := sim.NewClient(sf.server, sim.WithToken(nil, token))
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, sf.timeout)
	return c, ctx, cancel, nil
}

// call runs one change and prints the subscriber as it is afterwards.
func (sf *subscriberFlags) call(ctx context.Context, stdout io.Writer, verb string, f func(context.Context, *sim.Client) (sim.Subscriber, error)) error {
	c, ctx, cancel, err := sf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	sub, err := f(ctx, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s: %s %s\n", verb, sub.ID, sub.State, addrOrDash(sub.Addr))
	return nil
}

func parseStateArg(s string) (scp.State, error) {
	st, err := scp.ParseState(s)
	if err != nil {
		return "", &registry.ValidationError{Field: "state", Rule: "must be online, busy or absent"}
	}
	return st, nil
}

func addrOrDash(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return "-"
	}
	return ap.String()
}
