package provision

import (
	"context"
	"slices"
	"testing"
)

func TestTrunkAPI(t *testing.T) {
	e := newEnv(t, token, 0)
	r := e.do(t, "POST", "/api/v1/trunks", `{"name":"Carrier-A","cidrs":["198.51.100.7/24","2001:db8::/32"],"country_code":"+1"}`)
	if r.status != 201 || r.header.Get("Location") != "/api/v1/trunks/carrier-a" {
		t.Fatalf("create: %d %s, Location %q", r.status, r.body, r.header.Get("Location"))
	}
	var tv TrunkView
	e.must(t, 201, "POST", "/api/v1/trunks", `{"name":"b","cidrs":["203.0.113.5"],"identity":"from"}`, &tv)
	if tv.Name != "b" || !slices.Equal(tv.CIDRs, []string{"203.0.113.5/32"}) || tv.Identity != "from" || tv.CountryCode != "" || tv.CreatedAt.IsZero() {
		t.Errorf("created = %+v", tv)
	}
	var l TrunkList
	e.must(t, 200, "GET", "/api/v1/trunks", "", &l)
	if len(l.Trunks) != 2 || l.Trunks[1].Name != "carrier-a" || !slices.Equal(l.Trunks[1].CIDRs, []string{"198.51.100.0/24", "2001:db8::/32"}) ||
		l.Trunks[1].CountryCode != "1" || l.Trunks[1].Identity != "pai" {
		t.Fatalf("list = %+v", l)
	}

	for _, tc := range []struct {
		name, body  string
		status      int
		code, field string
	}{
		{"name taken", `{"name":"carrier-a","cidrs":["192.0.2.0/24"]}`, 409, CodeAlreadyExists, ""},
		{"range of another trunk", `{"name":"c","cidrs":["198.51.100.0/25","198.51.100.0/24"]}`, 409, CodeAlreadyExists, ""},
		{"no ranges", `{"name":"c","cidrs":[]}`, 400, CodeInvalidArgument, "cidr"},
		{"two ranges in one string", `{"name":"c","cidrs":["192.0.2.0/24,192.0.3.0/24"]}`, 400, CodeInvalidArgument, "cidr"},
		{"cidrs not an array", `{"name":"c","cidrs":"192.0.2.0/24"}`, 400, CodeInvalidArgument, "cidrs"},
		{"bad country code", `{"name":"c","cidrs":["192.0.2.0/24"],"country_code":"0"}`, 400, CodeInvalidArgument, "country_code"},
		{"bad identity", `{"name":"c","cidrs":["192.0.2.0/24"],"identity":"rpid"}`, 400, CodeInvalidArgument, "identity"},
		{"bad name", `{"name":"c d","cidrs":["192.0.2.0/24"]}`, 400, CodeInvalidArgument, "name"},
		{"unknown field", `{"name":"c","cidrs":["192.0.2.0/24"],"tls":true}`, 400, CodeInvalidArgument, "tls"},
	} {
		r := e.do(t, "POST", "/api/v1/trunks", tc.body)
		if got := r.err(); r.status != tc.status || got.Code != tc.code || got.Field != tc.field {
			t.Errorf("%s: %d %s, want %d %s on %q", tc.name, r.status, r.body, tc.status, tc.code, tc.field)
		}
	}
	// The 198.51.100.0/25 of the refused "c" was not kept.
	if ts, _ := e.store.Trunks(context.Background()); len(ts) != 2 {
		t.Errorf("trunks after refused requests: %+v", ts)
	}

	e.must(t, 204, "DELETE", "/api/v1/trunks/carrier-a", "", nil)
	if r := e.do(t, "DELETE", "/api/v1/trunks/carrier-a", ""); r.status != 404 || r.err().Code != CodeNotFound {
		t.Errorf("second delete: %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "/api/v1/trunks", "", "Authorization", "-"); r.status != 401 {
		t.Errorf("without a token: %d", r.status)
	}
}

func TestDIDAPI(t *testing.T) {
	e := newEnv(t, token, 0)
	e.must(t, 201, "POST", "/api/v1/users", `{"im_id":"alice","password":"pw"}`, nil)
	e.must(t, 201, "POST", "/api/v1/users", `{"im_id":"bob","password":"pw"}`, nil)
	r := e.do(t, "POST", "/api/v1/dids", `{"number":"+1 (555) 000-1111","im_id":"alice"}`)
	if r.status != 201 || r.header.Get("Location") != "/api/v1/dids/+15550001111" {
		t.Fatalf("create: %d %s, Location %q", r.status, r.body, r.header.Get("Location"))
	}
	var d DIDView
	e.must(t, 201, "POST", "/api/v1/dids", `{"number":"+15550002222","im_id":"alice","fallback":"terminal"}`, &d)
	if d.Number != "+15550002222" || d.IMID != "alice" || d.Fallback != "terminal" {
		t.Errorf("created = %+v", d)
	}
	e.must(t, 201, "POST", "/api/v1/dids", `{"number":"+441632960001","im_id":"bob"}`, nil)

	for _, tc := range []struct {
		name, body  string
		status      int
		code, field string
	}{
		{"second owner", `{"number":"+15550001111","im_id":"bob"}`, 409, CodeAlreadyExists, ""},
		{"unknown user", `{"number":"+15550003333","im_id":"nobody"}`, 404, CodeNotFound, ""},
		{"national number", `{"number":"5550003333","im_id":"bob"}`, 400, CodeInvalidArgument, "number"},
		{"bad IM ID", `{"number":"+15550003333","im_id":"a b"}`, 400, CodeInvalidArgument, "im_id"},
		{"bad fallback", `{"number":"+15550003333","im_id":"bob","fallback":"voicemail"}`, 400, CodeInvalidArgument, "fallback"},
	} {
		r := e.do(t, "POST", "/api/v1/dids", tc.body)
		if got := r.err(); r.status != tc.status || got.Code != tc.code || got.Field != tc.field {
			t.Errorf("%s: %d %s, want %d %s on %q", tc.name, r.status, r.body, tc.status, tc.code, tc.field)
		}
	}

	numbers := func(path string) []string {
		var l DIDList
		e.must(t, 200, "GET", path, "", &l)
		var out []string
		for _, d := range l.DIDs {
			out = append(out, d.Number)
		}
		return out
	}
	if got := numbers("/api/v1/dids"); !slices.Equal(got, []string{"+15550001111", "+15550002222", "+441632960001"}) {
		t.Errorf("all numbers = %v", got)
	}
	if got := numbers("/api/v1/users/alice/dids"); !slices.Equal(got, []string{"+15550001111", "+15550002222"}) {
		t.Errorf("alice's numbers = %v", got)
	}
	if r := e.do(t, "GET", "/api/v1/users/nobody/dids", ""); r.status != 404 {
		t.Errorf("numbers of an unknown user: %d", r.status)
	}
	// The number in the path: '+' literal or escaped.
	for _, p := range []string{"/api/v1/dids/+15550001111", "/api/v1/dids/%2B15550001111"} {
		e.must(t, 200, "GET", p, "", &d)
		if d.IMID != "alice" {
			t.Errorf("GET %s = %+v", p, d)
		}
	}
	if r := e.do(t, "GET", "/api/v1/dids/+15559999999", ""); r.status != 404 {
		t.Errorf("unowned number: %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "/api/v1/dids/5550001111", ""); r.status != 400 || r.err().Field != "number" {
		t.Errorf("number without +: %d %s", r.status, r.body)
	}
	e.must(t, 204, "DELETE", "/api/v1/dids/+15550002222", "", nil)
	if r := e.do(t, "DELETE", "/api/v1/dids/+15550002222", ""); r.status != 404 {
		t.Errorf("second delete: %d", r.status)
	}
	// Deleting a user frees its numbers.
	e.must(t, 204, "DELETE", "/api/v1/users/bob", "", nil)
	e.must(t, 201, "POST", "/api/v1/dids", `{"number":"+441632960001","im_id":"alice"}`, nil)
}
