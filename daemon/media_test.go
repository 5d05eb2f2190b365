package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imcall/b2bua/rtpproxy"
)

// TestMediaModes: anchoring is the default and exposes the RTP proxy's
// counters on /metrics; passthrough exposes only the call gauge; bad
// settings stop the start with an error naming the setting.
func TestMediaModes(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*Config)
		want    []string // lines /metrics must have
		notWant string
		err     string
	}{
		{name: "default anchors", set: func(*Config) {},
			want: []string{"b2bua_calls_active 0", "b2bua_rtp_calls 0", "b2bua_rtp_port_pairs 50", "b2bua_rtp_port_pairs_in_use 0",
				"b2bua_rtp_packets_relayed_total 0", "b2bua_rtp_bytes_relayed_total 0", "# TYPE b2bua_rtp_packets_relayed_total counter",
				"b2bua_dual_path_switches_total 0", "b2bua_dual_path_sessions_two_paths 0", `b2bua_dual_path_switch_gap_seconds_bucket{le="+Inf"} 0`}},
		{name: "in-kernel forwarding", set: func(c *Config) { c.RTPKernel = rtpproxy.KernelOn },
			want: []string{"b2bua_rtp_kernel_streams 0", "b2bua_rtp_packets_kernel_total 0", "# TYPE b2bua_rtp_packets_kernel_total counter"}},
		{name: "passthrough", set: func(c *Config) { c.Media = MediaPassthrough },
			want: []string{"b2bua_calls_active 0"}, notWant: "b2bua_rtp_"},
		{name: "unknown mode", set: func(c *Config) { c.Media = "relay" }, err: `media: "relay": must be anchor or passthrough`},
		{name: "IPv6 SIP host", set: func(c *Config) { c.SIPListen = "[::1]:0" }, err: "not an IPv4 address"},
		{name: "unspecified bind without advertise", set: func(c *Config) { c.RTPBind = netip.MustParseAddr("0.0.0.0") }, err: "needs an advertised address"},
		{name: "bad range", set: func(c *Config) { c.RTPPortMin, c.RTPPortMax = 30000, 20000 }, err: "port range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{
				DBPath:     filepath.Join(dir, "b2bua.db"),
				Domain:     "127.0.0.1",
				SIPListen:  "127.0.0.1:0",
				HTTPListen: "127.0.0.1:0",
				RTPPortMin: 37200, RTPPortMax: 37299, // a range no other package's tests use
				Logger: slog.New(slog.DiscardHandler),
			}
			tt.set(&cfg)
			d, err := Start(context.Background(), cfg)
			if tt.err != "" {
				if err == nil {
					d.Close()
					t.Fatalf("started; want error %q", tt.err)
				}
				if !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %q, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			res, err := http.Get("http://" + d.HTTPAddr() + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
				t.Fatalf("/metrics %d %q", res.StatusCode, res.Header.Get("Content-Type"))
			}
			lines := strings.Split(string(b), "\n")
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("/metrics lacks %q:\n%s", w, b)
				}
			}
			if tt.notWant != "" && strings.Contains(string(b), tt.notWant) {
				t.Errorf("/metrics has %q:\n%s", tt.notWant, b)
			}
		})
	}
}
