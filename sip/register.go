package sip

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// onRegister keeps the bindings of smart terminals (RFC 3261 §10.3). The
// user is authenticated with WWW-Authenticate; the address of record (the
// To user) must be the authenticated user.
func (s *Server) onRegister(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	if s.cfg.Bindings == nil {
		s.respond(tx, req, 501, "registration not supported")
		return
	}
	to := req.To()
	if to == nil {
		s.respond(tx, req, 400, "REGISTER without To")
		return
	}
	user, ok := s.authenticate(req, tx, "Authorization", 401)
	if !ok {
		return
	}
	aor, err := registry.ParseIMID(to.Address.User)
	if err != nil {
		s.respond(tx, req, 404, "not an IM user")
		return
	}
	// §10.3 step 6: the authenticated user must be allowed to change the
	// bindings of this address of record; here only its own.
	if s.cfg.Auth != nil && !s.trusted(req.Source()) && !strings.EqualFold(user, aor) {
		s.respond(tx, req, 403, "may only register its own address")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var terminalID int64
	t, err := s.cfg.Terminals.ActiveTerminal(ctx, aor)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		s.respond(tx, req, 404, "unknown IM user")
		return
	case err == nil && t.Kind == registry.Smart:
		terminalID = t.ID
	}
	now := time.Now().UTC()
	headerExpires := -1
	if h := req.GetHeader("Expires"); h != nil {
		if v, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			headerExpires = v
		}
	}
	contacts := req.GetHeaders("Contact")
	for _, h := range contacts {
		if strings.TrimSpace(h.Value()) == "*" {
			// §10.3 step 6: "*" only with Expires: 0 and alone.
			if headerExpires != 0 || len(contacts) != 1 {
				s.respond(tx, req, 400, "Contact * needs Expires: 0 and no other Contact")
				return
			}
			bs, err := s.cfg.Bindings.Bindings(ctx, aor, now)
			if err != nil {
				s.respond(tx, req, registryStatus(err), "registry unavailable")
				return
			}
			for _, b := range bs {
				if err := s.cfg.Bindings.RemoveBinding(ctx, aor, b.Key()); err != nil {
					s.respond(tx, req, registryStatus(err), "registry unavailable")
					return
				}
			}
			s.registerOK(ctx, tx, req, aor, now)
			return
		}
	}
	type change struct {
		contact  string
		instance string
		expires  int
		regID    bool
	}
	var changes []change
	for _, h := range contacts {
		for _, v := range splitContacts(h.Value()) {
			var u sipmsg.Uri
			params := sipmsg.NewParams()
			if _, err := sipmsg.ParseAddressValue(v, &u, &params); err != nil {
				s.respond(tx, req, 400, "malformed Contact")
				return
			}
			exp := headerExpires
			if e, ok := params.Get("expires"); ok {
				if n, err := strconv.Atoi(e); err == nil {
					exp = n
				}
			}
			if exp < 0 {
				exp = int(s.cfg.DefaultExpires / time.Second)
			}
			if exp > 0 && exp < int(s.cfg.MinExpires/time.Second) {
				// §10.3 step 7.
				s.respond(tx, req, 423, "", sipmsg.NewHeader("Min-Expires", strconv.Itoa(int(s.cfg.MinExpires/time.Second))))
				return
			}
			exp = min(exp, int(s.cfg.MaxExpires/time.Second))
			_, regID := params.Get("reg-id")
			changes = append(changes, change{contact: u.String(), instance: instanceID(params), expires: exp, regID: regID})
		}
	}
	outbound := false
	for _, ch := range changes {
		key := registry.Binding{Contact: ch.contact, Instance: ch.instance}.Key()
		if ch.expires == 0 {
			// A client that named its instance logs out by it, whatever
			// Contact it sends now (RFC 5626 §6).
			err = s.cfg.Bindings.RemoveBinding(ctx, aor, key)
			s.flows.unwatch(flowID(req.Transport(), req.Source()), "login "+aor+" "+key)
		} else {
			err = s.cfg.Bindings.PutBinding(ctx, registry.Binding{
				IMID:       aor,
				TerminalID: terminalID,
				Contact:    ch.contact,
				Instance:   ch.instance,
				Source:     req.Source(),
				Transport:  strings.ToLower(req.Transport()),
				Expires:    now.Add(time.Duration(ch.expires) * time.Second),
				UpdatedAt:  now,
			})
			// We reach a client at the source of its REGISTER: over TCP or
			// TLS that is its flow, so the login ends when the flow fails.
			if err == nil {
				s.watchLogin(req, aor, key)
			}
			outbound = outbound || ch.regID && ch.instance != "" && streamTransport(req.Transport())
		}
		var ve *registry.ValidationError
		if errors.As(err, &ve) {
			// The client's own Contact or instance broke a rule.
			s.respond(tx, req, 400, ve.Error())
			return
		}
		if err != nil {
			s.log.Warn("binding not stored", "aor", aor, "err", err)
			s.respond(tx, req, registryStatus(err), "registry unavailable")
			return
		}
	}
	var extra []sipmsg.Header
	if outbound {
		// RFC 5626 §6: a registrar that takes the flow of a REGISTER with
		// reg-id says so with Require: outbound; Flow-Timer asks for
		// keep-alives well within our idle timeout (§4.4.1: the client
		// sends them at 80-100% of it).
		idle := s.cfg.Conns.withDefaults().IdleTimeout
		extra = append(extra, sipmsg.NewHeader("Require", "outbound"),
			sipmsg.NewHeader("Flow-Timer", strconv.Itoa(max(int(idle*2/3/time.Second), 1))))
	}
	s.registerOK(ctx, tx, req, aor, now, extra...)
	s.onRegistered(aor) // messages kept for aor go out now
}

// registerOK answers with every current binding and its remaining time
// (RFC 3261 §10.3 step 8).
func (s *Server) registerOK(ctx context.Context, tx sipmsg.ServerTransaction, req *sipmsg.Request, aor string, now time.Time, extra ...sipmsg.Header) {
	bs, err := s.cfg.Bindings.Bindings(ctx, aor, now)
	if err != nil {
		s.respond(tx, req, registryStatus(err), "registry unavailable")
		return
	}
	var hdrs []sipmsg.Header
	for _, b := range bs {
		left := int(b.Expires.Sub(now).Round(time.Second) / time.Second)
		c := "<" + b.Contact + ">;expires=" + strconv.Itoa(max(left, 0))
		if b.Instance != "" {
			// The instance goes back with its binding (the binding's
			// key, RFC 5626 §6), so that a client can tell its own
			// among the user's others.
			c += `;+sip.instance="<` + b.Instance + `>"`
		}
		hdrs = append(hdrs, sipmsg.NewHeader("Contact", c))
	}
	hdrs = append(hdrs, sipmsg.NewHeader("Date", now.Format(time.RFC1123)))
	hdrs = append(hdrs, extra...)
	s.respond(tx, req, 200, "", hdrs...)
	s.cfg.Observer.Registered()
}

// instanceID gives the +sip.instance of a Contact without its quotes and
// angle brackets (RFC 5626 §4.1: "<urn:uuid:...>" in a quoted string), or "".
func instanceID(params sipmsg.HeaderParams) string {
	inst, _ := params.Get("+sip.instance")
	return strings.TrimSpace(strings.Trim(strings.TrimSpace(inst), `"<>`))
}

// splitContacts splits a Contact value holding several addresses at the
// commas outside quotes and angle brackets.
func splitContacts(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '<':
			if !quoted {
				depth++
			}
		case '>':
			if !quoted && depth > 0 {
				depth--
			}
		case ',':
			if !quoted && depth == 0 {
				out = append(out, strings.TrimSpace(v[start:i]))
				start = i + 1
			}
		}
	}
	if s := strings.TrimSpace(v[start:]); s != "" {
		out = append(out, s)
	}
	return out
}
