package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsServed: /metrics of a running daemon, in either media mode,
// parses as Prometheus text; every b2bua_ family has a HELP that says
// something and no two share one; the series read at scrape time are
// there, with the process and Go collectors; the RTP proxy's only when
// media is anchored.
func TestMetricsServed(t *testing.T) {
	for _, media := range []string{MediaAnchor, MediaPassthrough} {
		t.Run(media, func(t *testing.T) {
			dir := t.TempDir()
			d, err := Start(context.Background(), Config{
				DBPath: filepath.Join(dir, "b2bua.db"), Domain: "127.0.0.1",
				SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
				Media: media, RTPPortMin: 37100, RTPPortMax: 37199,
				Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			res, err := http.Get("http://" + d.HTTPAddr() + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			parser := expfmt.NewTextParser(model.UTF8Validation)
			fams, err := parser.TextToMetricFamilies(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			helpOf := map[string]string{}
			for n, f := range fams {
				if !strings.HasPrefix(n, "b2bua_") {
					continue
				}
				if len(strings.Fields(f.GetHelp())) < 3 {
					t.Errorf("%s: HELP %q does not say what it counts", n, f.GetHelp())
				}
				if other, dup := helpOf[f.GetHelp()]; dup {
					t.Errorf("%s and %s share the HELP %q", n, other, f.GetHelp())
				}
				helpOf[f.GetHelp()] = n
			}
			for _, n := range []string{"b2bua_calls_active", "b2bua_clients_logged_in", "b2bua_dual_path_switch_gap_seconds",
				"b2bua_sip_responses_sent_total", "process_cpu_seconds_total", "go_goroutines"} {
				if fams[n] == nil {
					t.Errorf("%s not served", n)
				}
			}
			if got := fams["b2bua_clients_logged_in"].GetMetric()[0].GetGauge().GetValue(); got != 0 {
				t.Errorf("clients logged in = %v on an empty registry", got)
			}
			if _, ok := fams["b2bua_rtp_packets_dropped_total"]; ok != (media == MediaAnchor) {
				t.Errorf("RTP proxy counters present=%v with media %s", ok, media)
			}
		})
	}
}
