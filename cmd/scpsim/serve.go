package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imcall/b2bua/httpserver"
	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/sim"
)

// serveConfig is everything `scpsim serve` is told.
type serveConfig struct {
	HTTPAddr    string // --http
	Subscribers string // --subscribers
	StateFile   string // --state
	CAPAddr     string // --cap: CAP/INAP over M3UA, [tcp://|sctp://]IP:PORT
	CAPPcap     string // --cap-pcap: capture file of the CAP associations
	TokenFile   string // --token-file: bearer token the /scp/v1/ routes require
	Token       string // SCPSIM_TOKEN, when no --token-file
	// HTTP bounds the HTTP listener; zero fields: httpserver's defaults
	// (tests shorten them).
	HTTP httpserver.Config
}

func newServeCmd(stderr io.Writer, getenv func(string) string) *cobra.Command {
	var cfg serveConfig
	var level string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP SCP protocol until SIGINT or SIGTERM",
		Long: `Serve the HTTP SCP protocol (locate and admin, under /scp/v1/).

--subscribers seeds the table from a JSON file such as
  [{"imsi": "001010000000001", "addr": "127.0.0.1:5062", "state": "online"}]
With --state FILE every change is saved to FILE atomically, and FILE, once it
exists, is loaded at start instead of --subscribers.

With --token-file FILE (or the token itself in SCPSIM_TOKEN) every route under
/scp/v1/, locate included, requires "Authorization: Bearer TOKEN": the
subscriber commands send it with --token or SCPSIM_TOKEN, the b2bua's http
backend with b2bua serve --scp-token-file. /healthz stays open. Without a
token everything is open, as suits a lab simulator on loopback.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lv slog.Level
			if err := lv.UnmarshalText([]byte(level)); err != nil {
				return &usageError{errors.New("log-level: must be debug, info, warn or error")}
			}
			logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
			if cfg.TokenFile == "" {
				cfg.Token = getenv("SCPSIM_TOKEN")
			}
			return runServe(cmd.Context(), cfg, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:8070", "address of the HTTP SCP listener (IP:PORT; port 0 picks a free one)")
	f.StringVar(&cfg.Subscribers, "subscribers", "", "JSON file of subscribers to start with")
	f.StringVar(&cfg.StateFile, "state", "", "file that keeps the subscribers across restarts")
	f.StringVar(&cfg.CAPAddr, "cap", "", "also serve CAP/INAP over M3UA (as the gsmSCF) on [tcp://|sctp://]IP:PORT, e.g. 127.0.0.1:2905")
	f.StringVar(&cfg.CAPPcap, "cap-pcap", "", "write the CAP signalling to this pcap file (readable by Wireshark and scpsim decode)")
	f.StringVar(&cfg.TokenFile, "token-file", "", "file holding the bearer token every /scp/v1/ route requires, created with a random token if missing (default: SCPSIM_TOKEN; neither: open)")
	f.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// runServe runs the simulator and its listeners until ctx ends or one
// listener fails, then stops them all. Each protocol is one entry in
// listeners: a new one opens its socket here, so that a busy port fails the
// start, and appends its serve function.
func runServe(ctx context.Context, cfg serveConfig, logger *slog.Logger) error {
	token, err := serveToken(cfg, logger)
	if err != nil {
		return err
	}
	s, err := openSimulator(cfg, logger)
	if err != nil {
		return err
	}
	type listener struct {
		name  string
		serve func(ctx context.Context) error
	}
	var listeners []listener

	hln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err) // a busy port is no mistake in the command line: exit 1
	}
	logger.Info("scpsim listening", "proto", "http", "addr", hln.Addr().String(), "token_required", token != "")
	listeners = append(listeners, listener{"http", func(ctx context.Context) error {
		return serveHTTP(ctx, hln, httpHandler(s, token, logger), cfg.HTTP, logger)
	}})
	if cfg.CAPAddr != "" {
		serve, err := openCAP(cfg, s, logger)
		if err != nil {
			hln.Close()
			return err
		}
		listeners = append(listeners, listener{"cap", serve})
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errs := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() {
			err := l.serve(ctx)
			if err != nil {
				err = fmt.Errorf("%s: %w", l.name, err)
			}
			cancel(err)
			errs <- err
		}()
	}
	var first error
	for range listeners {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	logger.Info("scpsim stopped", "subscribers", s.Len())
	return first
}

// openSimulator builds the table from --state if that file exists, else
// from --subscribers, and arranges for every change to be saved.
func openSimulator(cfg serveConfig, logger *slog.Logger) (*sim.Simulator, error) {
	var subs []sim.Subscriber
	var err error
	from := cfg.Subscribers
	if cfg.StateFile != "" {
		subs, err = sim.LoadFile(cfg.StateFile)
		switch {
		case err == nil:
			from = cfg.StateFile
		case errors.Is(err, fs.ErrNotExist):
			err = nil
		default:
			return nil, fmt.Errorf("state: %w", err)
		}
	}
	if from == cfg.Subscribers && from != "" {
		if subs, err = sim.LoadFile(from); err != nil {
			return nil, fmt.Errorf("subscribers: %w", err)
		}
	}
	simCfg := sim.Config{Subscribers: subs, Logger: logger}
	if cfg.StateFile != "" {
		path := cfg.StateFile
		simCfg.Persist = func(subs []sim.Subscriber) error { return sim.SaveFile(path, subs) }
	}
	s, err := sim.New(simCfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	if cfg.StateFile != "" && from != cfg.StateFile {
		// Writing the state file now makes a bad path fail the start, not
		// the first change.
		if err := sim.SaveFile(cfg.StateFile, s.List()); err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
	}
	logger.Info("subscribers loaded", "count", s.Len(), "from", from)
	return s, nil
}

func httpHandler(s *sim.Simulator, token string, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	h := sim.NewHandler(s, logger)
	if token != "" {
		// The admin routes change where calls go, and locate tells anyone
		// where a subscriber is: with a token, both require it, as an
		// operator's SCP would (the b2bua sends it with --scp-token-file).
		h = sim.RequireToken(token, h)
	}
	mux.Handle(sim.PathPrefix, h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	// A path that cleans to one under /scp reaches the protocol's handler
	// as it came, which answers JSON where ServeMux would redirect.
	h = httpserver.ServeDocument(scp.OpenAPIPath, scp.OpenAPI(), h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := path.Clean(r.URL.Path); p == "/scp" || strings.HasPrefix(p, "/scp/") {
			h.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// serveHTTP serves until ctx ends, then lets requests in flight finish for
// a few seconds.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, cfg httpserver.Config, logger *slog.Logger) error {
	if cfg.Logger == nil {
		cfg.Logger = logger
	}
	srv := httpserver.New(ln, h, cfg)
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; err == nil {
		err = serr
	}
	return err
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{fmt.Errorf("unexpected argument %q", strings.Join(args, " "))}
	}
	return nil
}

// serveToken is the bearer token of the /scp/v1/ routes: the first line of
// --token-file, else SCPSIM_TOKEN, else "" (open). A --token-file that does
// not exist is created with a random token, readable by its owner only, as
// b2bua serve does with its API token, so that `b2bua serve
// --scp-token-file` can read the same file.
func serveToken(cfg serveConfig, logger *slog.Logger) (string, error) {
	if cfg.TokenFile == "" {
		return strings.TrimSpace(cfg.Token), nil
	}
	b, err := os.ReadFile(cfg.TokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		var raw [24]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return "", fmt.Errorf("token-file: %w", err)
		}
		tok := hex.EncodeToString(raw[:])
		if err := os.WriteFile(cfg.TokenFile, []byte(tok+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("token-file: %w", err)
		}
		logger.Info("token file created", "file", cfg.TokenFile)
		return tok, nil
	}
	if err != nil {
		return "", &usageError{fmt.Errorf("token-file: %w", err)}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if t := strings.TrimSpace(line); t != "" {
		return t, nil
	}
	return "", &usageError{fmt.Errorf("token-file: %s is empty", cfg.TokenFile)}
}
