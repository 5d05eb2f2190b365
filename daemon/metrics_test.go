package daemon

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMetricsDocumented: every series on /metrics, in either media mode,
// has a HELP that says something and a TYPE, both before its sample and
// once each (Prometheus text format 0.0.4); counters are named *_total,
// and no two series share a HELP text, so none is a copy of another's.
func TestMetricsDocumented(t *testing.T) {
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
			help, typ := map[string]string{}, map[string]string{}
			helpOf := map[string]string{} // HELP text → series
			samples := 0
			seen := map[string]bool{}
			name := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
			sc := bufio.NewScanner(res.Body)
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "# HELP "):
					n, text, _ := strings.Cut(strings.TrimPrefix(line, "# HELP "), " ")
					if _, dup := help[n]; dup {
						t.Errorf("%s: HELP given twice", n)
					}
					if len(strings.Fields(text)) < 3 {
						t.Errorf("%s: HELP %q does not say what it counts", n, text)
					}
					if other, dup := helpOf[text]; dup {
						t.Errorf("%s and %s share the HELP %q", n, other, text)
					}
					help[n], helpOf[text] = text, n
				case strings.HasPrefix(line, "# TYPE "):
					n, kind, _ := strings.Cut(strings.TrimPrefix(line, "# TYPE "), " ")
					if _, dup := typ[n]; dup {
						t.Errorf("%s: TYPE given twice", n)
					}
					switch kind {
					case "counter":
						if !strings.HasSuffix(n, "_total") {
							t.Errorf("counter %s is not named *_total", n)
						}
					case "gauge", "histogram":
					default:
						t.Errorf("%s: TYPE %q", n, kind)
					}
					typ[n] = kind
				case strings.HasPrefix(line, "#") || line == "":
				default:
					samples++
					n, _, _ := strings.Cut(line, " ")
					if i := strings.IndexByte(n, '{'); i > 0 && strings.HasSuffix(n, "}") {
						n = n[:i] // labels: le of a histogram's buckets
					}
					if !name.MatchString(n) {
						t.Errorf("sample %q: bad metric name", line)
					}
					// A histogram's series are its family's name plus
					// _bucket, _sum and _count.
					for _, suffix := range []string{"_bucket", "_sum", "_count"} {
						if base, ok := strings.CutSuffix(n, suffix); ok && typ[base] == "histogram" {
							n = base
						}
					}
					if help[n] == "" || typ[n] == "" {
						t.Errorf("sample %q comes without a HELP and a TYPE before it", line)
					}
					seen[n] = true
				}
			}
			if samples == 0 || len(seen) != len(help) || len(seen) != len(typ) {
				t.Errorf("%d series, %d HELP, %d TYPE lines: want one of each per series", len(seen), len(help), len(typ))
			}
			if _, ok := typ["b2bua_rtp_packets_dropped_total"]; ok != (media == MediaAnchor) {
				t.Errorf("RTP proxy counters present=%v with media %s", ok, media)
			}
		})
	}
}
