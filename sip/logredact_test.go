package sip

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestSipgoLoggerRedacts(t *testing.T) {
	const secret = `Digest username="alice", response="6629fae49393a05397450978507c4ef1"`
	raw := "INVITE sip:bob@x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\nProxy-Authorization: " + secret + "\r\nauthorization:" + secret + "\r\n\r\n"
	for _, tc := range []struct {
		name   string
		level  slog.Level
		log    func(*slog.Logger)
		want   string // "" : nothing logged
		absent string
	}{
		{"parse failure kept at debug", slog.LevelInfo, func(l *slog.Logger) { l.Error("failed to parse", "data", raw, "error", errors.New("x")) }, "", ""},
		{"parse failure at debug: start line only", slog.LevelDebug, func(l *slog.Logger) { l.Error("failed to parse", "data", raw) }, "INVITE sip:bob@x SIP/2.0 (", "6629fae4"},
		{"credential lines in any string", slog.LevelDebug, func(l *slog.Logger) { l.Info("x", "msg", raw) }, "Proxy-Authorization: [redacted]", "6629fae4"},
		{"credential lines in an error", slog.LevelDebug, func(l *slog.Logger) { l.Info("x", "err", errors.New(raw)) }, "[redacted]", "6629fae4"},
		{"in With attributes", slog.LevelDebug, func(l *slog.Logger) { l.With("m", raw).Info("x") }, "[redacted]", "6629fae4"},
		{"other records untouched", slog.LevelInfo, func(l *slog.Logger) { l.Warn("SIP request handler not found", "method", "FOO") }, "method=FOO", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(sipgoLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level}))))
			out := buf.String()
			if tc.want == "" && out != "" {
				t.Fatalf("logged %q", out)
			}
			if !strings.Contains(out, tc.want) || (tc.absent != "" && strings.Contains(out, tc.absent)) {
				t.Errorf("log %q: want %q, without %q", out, tc.want, tc.absent)
			}
		})
	}
}
