package main

import (
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/daemon"
)

func TestCheckDualPath(t *testing.T) {
	s := time.Second
	tests := []struct {
		name  string
		d     daemon.DualPath
		media time.Duration
		err   string
	}{
		{"defaults", daemon.DualPath{Window: 10 * s, LegMediaTimeout: 2 * s, LegTimeout: 30 * s}, 60 * s, ""},
		{"off", daemon.DualPath{LegMediaTimeout: 2 * s, LegTimeout: 90 * s}, 60 * s, ""},
		{"negative window", daemon.DualPath{Window: -s, LegMediaTimeout: 2 * s, LegTimeout: 30 * s}, 60 * s, "--dual-path-window"},
		{"zero leg timeout", daemon.DualPath{Window: 10 * s, LegMediaTimeout: 2 * s}, 60 * s, "must be positive"},
		{"leg timeout below media timeout of the leg", daemon.DualPath{Window: 10 * s, LegMediaTimeout: 5 * s, LegTimeout: 2 * s}, 60 * s, "--leg-media-timeout"},
		{"leg timeout past the call's media timeout", daemon.DualPath{Window: 10 * s, LegMediaTimeout: 2 * s, LegTimeout: 60 * s}, 60 * s, "--media-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkDualPath(tt.d, tt.media)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("checkDualPath = %v, want %q", err, tt.err)
			}
		})
	}
}
