package main

import (
	"strings"
	"testing"
	"time"
)

func TestRTPOptions(t *testing.T) {
	ok := rtpOptions{mode: "anchor", ports: "20000-29999", timeout: "60s", kernel: "off"}
	tests := []struct {
		name string
		set  func(*rtpOptions)
		err  string
	}{
		{"defaults", func(*rtpOptions) {}, ""},
		{"passthrough", func(o *rtpOptions) { o.mode = "passthrough" }, ""},
		{"NAT", func(o *rtpOptions) { o.bind, o.advertise = "0.0.0.0", "192.0.2.10" }, ""},
		{"mode", func(o *rtpOptions) { o.mode = "relay" }, `--media: "relay": must be anchor or passthrough`},
		{"bind", func(o *rtpOptions) { o.bind = "::1" }, `--rtp-bind: "::1": must be an IPv4 address`},
		{"advertise", func(o *rtpOptions) { o.advertise = "host.example" }, `--rtp-advertise: "host.example"`},
		{"advertise unspecified", func(o *rtpOptions) { o.advertise = "0.0.0.0" }, "must be a unicast address"},
		{"any without advertise", func(o *rtpOptions) { o.bind = "0.0.0.0" }, "0.0.0.0 needs --rtp-advertise"},
		{"IPv6", func(o *rtpOptions) { o.bindV6, o.adv6 = "::1", "2001:db8::10" }, ""},
		{"IPv6 NAT", func(o *rtpOptions) { o.bindV6, o.adv6 = "::", "2001:db8::10" }, ""},
		{"IPv6 bind v4", func(o *rtpOptions) { o.bindV6 = "127.0.0.1" }, `--rtp-bind-v6: "127.0.0.1": must be an IPv6 address`},
		{"IPv6 bind mapped", func(o *rtpOptions) { o.bindV6 = "::ffff:127.0.0.1" }, `--rtp-bind-v6: "::ffff:127.0.0.1": must be an IPv6 address`},
		{"IPv6 any without advertise", func(o *rtpOptions) { o.bindV6 = "::" }, ":: needs --rtp-advertise-v6"},
		{"IPv6 advertise alone", func(o *rtpOptions) { o.adv6 = "2001:db8::10" }, "--rtp-advertise-v6 needs --rtp-bind-v6"},
		{"IPv6 advertise unspecified", func(o *rtpOptions) { o.bindV6, o.adv6 = "::1", "::" }, `--rtp-advertise-v6: "::": must be a unicast address`},
		{"ports reversed", func(o *rtpOptions) { o.ports = "30000-20000" }, `--rtp-ports: "30000-20000"`},
		{"ports one", func(o *rtpOptions) { o.ports = "20000" }, `--rtp-ports: "20000"`},
		{"ports low", func(o *rtpOptions) { o.ports = "80-200" }, `--rtp-ports: "80-200"`},
		{"timeout", func(o *rtpOptions) { o.timeout = "soon" }, `--media-timeout: "soon"`},
		{"timeout zero", func(o *rtpOptions) { o.timeout = "0s" }, `--media-timeout: "0s"`},
		{"kernel auto", func(o *rtpOptions) { o.kernel = "auto" }, ""},
		{"kernel on", func(o *rtpOptions) { o.kernel = "on" }, ""},
		{"kernel", func(o *rtpOptions) { o.kernel = "yes" }, `--rtp-kernel: "yes": must be auto, on or off`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.set(&o)
			c, err := o.parse()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Media != o.mode || c.RTPPortMin != 20000 || c.RTPPortMax != 29999 || c.MediaTimeout != time.Minute || c.RTPKernel.String() != o.kernel {
					t.Errorf("parse = %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want %q", err, tt.err)
			}
		})
	}
}
