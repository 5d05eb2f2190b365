package sip_test

import (
	"errors"
	"testing"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
	b2b "github.com/imcall/b2bua/sip"
)

func TestCalledNumber(t *testing.T) {
	us := registry.Trunk{Name: "us", CountryCode: "1"}
	uk := registry.Trunk{Name: "uk", CountryCode: "44"}
	intl := registry.Trunk{Name: "intl"}
	for _, tc := range []struct {
		ruri  string
		trunk registry.Trunk
		want  string // "" means a ValidationError on number
	}{
		{"sip:+15550001111@192.0.2.1;user=phone", us, "+15550001111"},
		{"sip:+15550001111@192.0.2.1:5060;user=phone;transport=udp", intl, "+15550001111"},
		{"sip:15550001111@192.0.2.1", us, "+15550001111"}, // E.164 without '+'
		{"sip:15550001111@192.0.2.1", intl, "+15550001111"},
		{"sip:5550001111@192.0.2.1", us, "+15550001111"}, // national
		{"sip:07700900123@192.0.2.1", uk, "+447700900123"},
		{"sips:+441632960001@trunk.example", us, "+441632960001"},
		{"sip:+1-555-000-1111@192.0.2.1;user=phone", intl, "+15550001111"}, // RFC 3966 visual separators
		{"sip:+1(555)000.1111@192.0.2.1;user=phone", intl, "+15550001111"},
		{"sip:%2B15550001111@192.0.2.1", intl, "+15550001111"},                               // escaped '+'
		{"sip:+15550001111;npdi;rn=+15550009999@192.0.2.1;user=phone", intl, "+15550001111"}, // user parameters dropped
		{"tel:+15550001111", intl, "+15550001111"},
		{"tel:+1-555-000-1111;isub=12", intl, "+15550001111"},
		{"tel:5550001111;phone-context=+1", uk, "+15550001111"}, // the context's prefix, not the trunk's
		{"tel:555-000-1111;phone-context=example.com", us, "+15550001111"},
		{"sip:alice@192.0.2.1", us, ""},
		{"sip:192.0.2.1", us, ""},
		{"sip:+1555@192.0.2.1", us, ""},   // too short for E.164
		{"tel:+1555000111122223", us, ""}, // too long
		{"urn:service:sos", us, ""},
	} {
		var u sipmsg.Uri
		if err := sipmsg.ParseUri(tc.ruri, &u); err != nil {
			t.Fatalf("%s: %v", tc.ruri, err)
		}
		got, err := b2b.CalledNumber(u, tc.trunk)
		if tc.want == "" {
			var ve *registry.ValidationError
			if !errors.As(err, &ve) || ve.Field != "number" {
				t.Errorf("CalledNumber(%s, cc %q) = %q, %v; want a ValidationError on number", tc.ruri, tc.trunk.CountryCode, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CalledNumber(%s, cc %q) = %q, %v; want %s", tc.ruri, tc.trunk.CountryCode, got, err, tc.want)
		}
	}
}

func TestTrunkCaller(t *testing.T) {
	pai := registry.Trunk{Name: "a", CountryCode: "1", Identity: registry.IdentityPAI}
	from := registry.Trunk{Name: "b", CountryCode: "1", Identity: registry.IdentityFrom}
	const fromHdr = `"Somebody" <sip:5550002222@192.0.2.1>;tag=abc`
	for _, tc := range []struct {
		name  string
		trunk registry.Trunk
		hdrs  [][2]string
		want  b2b.TrunkIdentity
	}{
		{"asserted", pai, [][2]string{{"P-Asserted-Identity", `"Carol" <sip:+15550003333@carrier.example;user=phone>`}},
			b2b.TrunkIdentity{URI: "sip:+15550003333@carrier.example;user=phone", Number: "+15550003333", Display: "Carol", Asserted: true}},
		{"asserted tel wins over asserted sip name", pai, [][2]string{{"P-Asserted-Identity", `<sip:carol@carrier.example>, <tel:+1-555-000-3333>`}},
			b2b.TrunkIdentity{URI: "tel:+1-555-000-3333", Number: "+15550003333", Asserted: true}},
		{"two PAI headers", pai, [][2]string{{"P-Asserted-Identity", `<sip:carol@carrier.example>`}, {"P-Asserted-Identity", `<tel:5550003333>`}},
			b2b.TrunkIdentity{URI: "tel:5550003333", Number: "+15550003333", Asserted: true}},
		{"asserted name without number", pai, [][2]string{{"P-Asserted-Identity", `<sip:carol@carrier.example>`}},
			b2b.TrunkIdentity{URI: "sip:carol@carrier.example", Asserted: true}},
		{"no PAI: From", pai, nil,
			b2b.TrunkIdentity{URI: "sip:5550002222@192.0.2.1", Number: "+15550002222", Display: "Somebody"}},
		{"unparsable PAI: From", pai, [][2]string{{"P-Asserted-Identity", `<>`}},
			b2b.TrunkIdentity{URI: "sip:5550002222@192.0.2.1", Number: "+15550002222", Display: "Somebody"}},
		{"trunk says From: PAI ignored", from, [][2]string{{"P-Asserted-Identity", `<tel:+15550003333>`}},
			b2b.TrunkIdentity{URI: "sip:5550002222@192.0.2.1", Number: "+15550002222", Display: "Somebody"}},
		{"Privacy: id", pai, [][2]string{{"P-Asserted-Identity", `<tel:+15550003333>`}, {"Privacy", "id"}},
			b2b.TrunkIdentity{URI: "tel:+15550003333", Number: "+15550003333", Asserted: true, Private: true}},
		{"Privacy: header;user", from, [][2]string{{"Privacy", "header; user"}},
			b2b.TrunkIdentity{URI: "sip:5550002222@192.0.2.1", Number: "+15550002222", Display: "Somebody", Private: true}},
		{"Privacy: none", from, [][2]string{{"Privacy", "none"}},
			b2b.TrunkIdentity{URI: "sip:5550002222@192.0.2.1", Number: "+15550002222", Display: "Somebody"}},
	} {
		req := sipmsg.NewRequest(sipmsg.INVITE, sipmsg.Uri{Scheme: "sip", User: "+15550001111", Host: "192.0.2.9"})
		req.AppendHeader(sipmsg.NewHeader("From", fromHdr))
		for _, h := range tc.hdrs {
			req.AppendHeader(sipmsg.NewHeader(h[0], h[1]))
		}
		// Parse the request back from its text, as it would arrive, so
		// that From is the parsed header sipgo gives a server.
		msg, err := sipmsg.ParseMessage([]byte(req.String()))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := b2b.TrunkCaller(msg.(*sipmsg.Request), tc.trunk); got != tc.want {
			t.Errorf("%s: TrunkCaller = %+v; want %+v", tc.name, got, tc.want)
		}
	}
}
