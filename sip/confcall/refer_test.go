package confcall

import (
	"testing"

	"github.com/imcall/b2bua/conference"
)

func TestReferTarget(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<sip:bob@im.example>", "bob"},
		{"sip:bob@im.example", "bob"},
		{`"Bob" <sip:bob@im.example;transport=udp>`, "bob"},
		{"<sip:+15551234567@gw.example;user=phone>", "+15551234567"},
		{"<tel:+15551234567>", "+15551234567"},
		{"<tel:+15551234567;phone-context=example>", "+15551234567"},
		{"<sip:im.example>", ""},
		{"<sip:bob@im.example?Replaces=abc>", ""},
		{"<sip:bob@im.example", ""},
	} {
		got, err := referTarget(tc.in)
		if (err != nil) != (tc.want == "") || (tc.want != "" && got != tc.want) {
			t.Errorf("referTarget(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestMayRefer(t *testing.T) {
	st := conference.Snapshot{Owner: "alice", Participants: []conference.Participant{
		{Target: "bob", Status: conference.StatusConnected},
		{Target: "carol", Status: conference.StatusDisconnected},
	}}
	for user, want := range map[string]bool{"alice": true, "bob": true, "carol": false, "dave": false} {
		if got := mayRefer(st, user); got != want {
			t.Errorf("mayRefer(%s) = %v, want %v", user, got, want)
		}
	}
}
