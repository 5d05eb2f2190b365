package rtpproxy

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzRewrite feeds arbitrary bodies to the rewriter as offers and answers:
// it must never panic, every error must be an *Error with a 4xx/5xx status,
// and whatever it returns must parse again and contain none of the
// addresses it was given. The seeds are the inputs of the golden files plus
// testdata/fuzz/FuzzRewrite.
func FuzzRewrite(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*.txt"))
	for _, fn := range files {
		raw, err := os.ReadFile(fn)
		if err != nil {
			f.Fatal(err)
		}
		_, steps, err := parseGolden(string(raw))
		if err != nil {
			f.Fatal(err)
		}
		for _, st := range steps {
			f.Add([]byte(strings.ReplaceAll(st.input, "\n", "\r\n")), st.kind == "offer")
		}
	}
	p, err := New(Config{
		BindAddr:      netip.MustParseAddr("127.0.0.1"),
		AdvertiseAddr: netip.MustParseAddr("203.0.113.10"),
		PortMin:       35000, PortMax: 35999, Drain: 10 * time.Millisecond, Workers: 1,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close() })
	f.Fuzz(func(t *testing.T, body []byte, asOffer bool) {
		c, err := p.NewCall(t.Context(), CallConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var out []byte
		if asOffer {
			out, err = c.RewriteOffer(legA, legB, body)
		} else {
			// an answer needs an offer first
			if _, err := c.RewriteOffer(legB, legA, body); err != nil {
				return
			}
			out, err = c.RewriteAnswer(legA, legB, body)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status > 599 || e.Text == "" {
				t.Fatalf("untyped or bad error %#v", err)
			}
			return
		}
		sd, err := parseSDP(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%s", err, out)
		}
		for _, md := range sd.MediaDescriptions {
			if ci := md.ConnectionInformation; ci != nil && ci.Address != nil &&
				ci.Address.Address != "203.0.113.10" && ci.Address.Address != "0.0.0.0" {
				t.Fatalf("media address %q leaked", ci.Address.Address)
			}
		}
	})
}
