package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imcall/b2bua/scp/capscp"
	"github.com/imcall/b2bua/scp/sim"
	"github.com/imcall/b2bua/scp/ss7/assoc"
	"github.com/imcall/b2bua/scp/ss7/pcap"
	"github.com/imcall/b2bua/scp/ss7/trace"
)

// openCAP opens the CAP listener now, so that a busy port or a kernel
// without SCTP fails the start, and returns its serve function. The gsmSCF
// answers from the same simulator as the HTTP API.
func openCAP(cfg serveConfig, s *sim.Simulator, logger *slog.Logger) (func(context.Context) error, error) {
	network, addr := assoc.TCP, cfg.CAPAddr
	if n, a, ok := strings.Cut(cfg.CAPAddr, "://"); ok {
		network, addr = n, a
	}
	if network != assoc.TCP && network != assoc.SCTP {
		return nil, &usageError{fmt.Errorf("cap: %q: want IP:PORT, tcp://IP:PORT or sctp://IP:PORT", cfg.CAPAddr)}
	}
	if err := assoc.CheckNetwork(network); err != nil {
		// SCTP asked of a kernel without it: the command line must change.
		return nil, &usageError{fmt.Errorf("cap: listen %s %s: %w", network, addr, err)}
	}
	ln, err := capscp.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("cap: %w", err) // a busy port is no mistake in the command line: exit 1
	}
	var w *pcap.Writer
	var capture io.Closer
	if cfg.CAPPcap != "" {
		f, err := os.Create(cfg.CAPPcap)
		if err == nil {
			w, err = pcap.NewWriter(f)
		}
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("cap-pcap: %w", err)
		}
		capture = f
	}
	srv, err := capscp.NewServer(capscp.ServerConfig{Locator: s, Pcap: w, Logger: logger})
	if err != nil {
		ln.Close()
		return nil, err
	}
	logger.Info("scpsim listening", "proto", "cap", "network", network, "addr", ln.Addr().String())
	return func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		var err error
		select {
		case err = <-errc:
		case <-ctx.Done():
		}
		srv.Close()
		if capture != nil {
			err = errors.Join(err, capture.Close())
		}
		return err
	}, nil
}

func newDecodeCmd(stdout io.Writer) *cobra.Command {
	var layer string
	cmd := &cobra.Command{
		Use:   "decode [FILE]",
		Short: "Print M3UA/SCCP/TCAP/CAP signalling decoded field by field",
		Long: `Decode a pcap file (as written by --cap-pcap, Wireshark or tcpdump:
SCTP with PPID 3 over IP, Ethernet, or link type 147 as M3UA) or a hex dump
of one message, from FILE or standard input, and print it field by field.

A hex dump may contain spaces, colons, 0x prefixes, offset columns and
# comments. Its outermost layer is guessed from the first octet unless
--layer says m3ua, sccp or tcap.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch trace.Layer(layer) {
			case "", trace.LayerM3UA, trace.LayerSCCP, trace.LayerTCAP:
			default:
				return &usageError{errors.New("layer: must be m3ua, sccp or tcap")}
			}
			in := cmd.InOrStdin()
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			data, err := io.ReadAll(io.LimitReader(in, 256<<20))
			if err != nil {
				return err
			}
			return decode(stdout, data, trace.Layer(layer))
		},
	}
	cmd.Flags().StringVar(&layer, "layer", "", "outermost layer of a hex dump: m3ua, sccp or tcap (default: guessed)")
	return cmd
}

func decode(w io.Writer, data []byte, layer trace.Layer) error {
	if pkts, err := pcap.ReadM3UA(bytes.NewReader(data)); !errors.Is(err, pcap.ErrFormat) {
		for i, p := range pkts {
			fmt.Fprintf(w, "#%d %s", i+1, p.Time.UTC().Format("2006-01-02T15:04:05.000000Z"))
			if p.Src.IsValid() {
				fmt.Fprintf(w, " %s → %s", p.Src, p.Dst)
			}
			fmt.Fprintln(w)
			trace.Describe(w, trace.LayerM3UA, p.Data)
		}
		if err != nil {
			return fmt.Errorf("pcap: %w", err)
		}
		if len(pkts) == 0 {
			return errors.New("pcap: no M3UA messages in the capture")
		}
		return nil
	}
	b, err := trace.ParseHex(string(data))
	if err != nil {
		return &usageError{fmt.Errorf("input is neither a pcap file nor a hex dump: %w", err)}
	}
	if len(b) == 0 {
		return &usageError{errors.New("no input")}
	}
	if layer == "" {
		layer = trace.Guess(b)
	}
	trace.Describe(w, layer, b)
	return nil
}
