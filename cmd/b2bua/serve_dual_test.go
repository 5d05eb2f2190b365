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
		{"negative probe interval", daemon.DualPath{Window: 10 * s, LegMediaTimeout: 2 * s, LegTimeout: 30 * s, ProbeInterval: -s}, 60 * s, "--leg-probe-interval"},
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

// TestFitDualPath: a short --media-timeout alone pulls the path timeouts
// left at their defaults under it; values the user gave are kept.
func TestFitDualPath(t *testing.T) {
	s := time.Second
	def := daemon.DualPath{Window: 10 * s, LegMediaTimeout: 2 * s, LegTimeout: 30 * s}
	tests := []struct {
		name                  string
		d                     daemon.DualPath
		media                 time.Duration
		legSet, legMediaSet   bool
		wantLeg, wantLegMedia time.Duration
	}{
		{"defaults fit", def, 60 * s, false, false, 30 * s, 2 * s},
		{"short media timeout", def, s, false, false, s / 2, s / 2},
		{"media timeout of 10s", def, 10 * s, false, false, 5 * s, 2 * s},
		{"leg timeout given", def, s, true, false, 30 * s, 2 * s},
		{"leg media timeout given", def, s, false, true, s / 2, 2 * s},
		{"dual-path off", daemon.DualPath{LegMediaTimeout: 2 * s, LegTimeout: 30 * s}, s, false, false, 30 * s, 2 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fitDualPath(tt.d, tt.media, tt.legSet, tt.legMediaSet)
			if got.LegTimeout != tt.wantLeg || got.LegMediaTimeout != tt.wantLegMedia {
				t.Fatalf("fitDualPath = leg %v, leg media %v; want %v, %v", got.LegTimeout, got.LegMediaTimeout, tt.wantLeg, tt.wantLegMedia)
			}
		})
	}
}
