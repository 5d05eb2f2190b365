package sip

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
)

// sipgoLogger is the logger handed to sipgo. sipgo logs a datagram it
// cannot parse whole, at error level ("failed to parse", data=...): that
// would put the credentials of any malformed request carrying an
// Authorization header into the log, and lets anyone who can send UDP
// write to it at full rate. Such records are kept at debug level and
// their message text is cut to the start line, with any credentials
// removed.
func sipgoLogger(base *slog.Logger) *slog.Logger {
	return slog.New(redactHandler{next: base.Handler()}).With("component", "sipgo")
}

// redactHandler removes SIP credentials from the records of sipgo.
type redactHandler struct{ next slog.Handler }

func (h redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, redactText(r.Message), r.PC)
	if r.Message == "failed to parse" && r.Level > slog.LevelDebug {
		// A malformed datagram is the sender's problem; the B2BUA answers
		// 400 where it can (malformed.go).
		out.Level = slog.LevelDebug
		if !h.next.Enabled(ctx, out.Level) {
			return nil
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return redactHandler{next: h.next.WithAttrs(red)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{next: h.next.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		s := v.String()
		if a.Key == "data" {
			// A raw message: its start line and size say enough.
			first, _, _ := strings.Cut(s, "\n")
			s = strings.TrimRight(first, "\r") + " (" + strconv.Itoa(len(s)) + " bytes)"
		}
		return slog.String(a.Key, redactText(s))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, x := range g {
			out[i] = redactAttr(x)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, redactText(err.Error()))
		}
		if s, ok := v.Any().(interface{ String() string }); ok {
			return slog.String(a.Key, redactText(s.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// credentialHeader matches the value of an Authorization or
// Proxy-Authorization header line (RFC 3261 §20.7, §20.28).
var credentialHeader = regexp.MustCompile(`(?im)^([ \t]*(?:proxy-)?authorization[ \t]*:)[^\r\n]*`)

// redactText replaces the values of credential header lines in s.
func redactText(s string) string {
	if !strings.Contains(strings.ToLower(s), "authorization") {
		return s
	}
	return credentialHeader.ReplaceAllString(s, "$1 [redacted]")
}
