package sim

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imcall/b2bua/scp"
)

func TestDecodeSubscribers(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Subscriber
		wantErr string // substring of the error; empty means success
	}{
		{name: "empty array", in: "[]", want: []Subscriber{}},
		{name: "imsi default state", in: `[{"imsi":"001010000000001","addr":"127.0.0.1:5062"}]`,
			want: []Subscriber{{ID: "imsi:001010000000001", Addr: addrA, State: scp.Online}}},
		{name: "mac normalised", in: `[{"mac":"00-1A-2B-3C-4D-5E","state":"Absent"}]`,
			want: []Subscriber{{ID: "mac:00:1a:2b:3c:4d:5e", State: scp.Absent}}},
		{name: "ipv6", in: `[{"imsi":"001010000000002","addr":"[::1]:5070","state":"busy"}]`,
			want: []Subscriber{{ID: "imsi:001010000000002", Addr: addrB, State: scp.Busy}}},
		{name: "msisdn", in: `[{"msisdn":" +441632960001 ","addr":"[::1]:5070","state":"online"}]`,
			want: []Subscriber{{ID: "msisdn:+441632960001", Addr: addrB, State: scp.Online}}},
		{name: "empty input", in: "", wantErr: "must be a JSON array"},
		{name: "object not array", in: `{"imsi":"001010000000001"}`, wantErr: "must be a JSON array"},
		{name: "null", in: `null`, wantErr: "must be a JSON array"},
		{name: "truncated", in: `[{"imsi":"001010000000001"`, wantErr: "truncated JSON"},
		{name: "syntax error line", in: "[\n  {\"imsi\": 001}\n]", wantErr: "line 2"},
		{name: "trailing data", in: `[] []`, wantErr: "unexpected data after the array"},
		{name: "entry not object", in: `[{"imsi":"001010000000001","addr":"127.0.0.1:5062"}, 5]`, wantErr: "subscribers[1]: must be a JSON object"},
		{name: "unknown field", in: `[{"imsi":"001010000000001","addr":"127.0.0.1:5062","colour":"red"}]`, wantErr: `subscribers[0]: json: unknown field "colour"`},
		{name: "wrong type", in: `[{"imsi":1010000000001,"addr":"127.0.0.1:5062"}]`, wantErr: "subscribers[0]: imsi: must be a JSON string"},
		{name: "bad imsi", in: `[{"imsi":"12ab","addr":"127.0.0.1:5062"}]`, wantErr: "subscribers[0]: imsi: must be 6 to 15 digits"},
		{name: "bad mac", in: `[{"mac":"00:1a:2b","state":"absent"}]`, wantErr: "subscribers[0]: mac: must be an EUI-48"},
		{name: "both ids", in: `[{"imsi":"001010000000001","mac":"00:1a:2b:3c:4d:5e","addr":"127.0.0.1:5062"}]`, wantErr: "give one of imsi, mac or msisdn, not several"},
		{name: "imsi and msisdn", in: `[{"imsi":"001010000000001","msisdn":"+441632960001","addr":"127.0.0.1:5062"}]`, wantErr: "subscribers[0]: imsi: give one of imsi, mac or msisdn"},
		{name: "bad msisdn", in: `[{"msisdn":"441632960001","addr":"127.0.0.1:5062"}]`, wantErr: "subscribers[0]: msisdn: must be an E.164 number"},
		{name: "no id", in: `[{"addr":"127.0.0.1:5062"}]`, wantErr: "subscribers[0]: imsi: an imsi, a mac or an msisdn is required"},
		{name: "bad addr", in: `[{"imsi":"001010000000001","addr":"localhost:5062"}]`, wantErr: "subscribers[0]: addr: must be IP:PORT"},
		{name: "addr without port", in: `[{"imsi":"001010000000001","addr":"127.0.0.1"}]`, wantErr: "addr: must be IP:PORT"},
		{name: "bad state", in: `[{"imsi":"001010000000001","addr":"127.0.0.1:5062","state":"asleep"}]`, wantErr: "subscribers[0]: state: must be online, busy or absent"},
		{name: "online without addr", in: `[{"imsi":"001010000000001"}]`, wantErr: "subscribers[0]: addr: is required for an online subscriber"},
		{name: "duplicate", in: `[{"imsi":"001010000000001","addr":"127.0.0.1:5062"},{"imsi":"001010000000001","state":"busy"}]`, wantErr: "subscribers[1]: imsi: imsi:001010000000001 is already given by subscribers[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSubscribers(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFileRoundTrip(t *testing.T) {
	subs, err := LoadFile(filepath.Join("..", "..", "testdata", "scp", "subscribers.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 4 {
		t.Fatalf("loaded %d subscribers, want 4", len(subs))
	}
	path := filepath.Join(t.TempDir(), "state.json")
	if err := SaveFile(path, subs); err != nil {
		t.Fatal(err)
	}
	again, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(subs, again) {
		t.Fatalf("round trip changed the table:\n%+v\n%+v", subs, again)
	}
	// No temporary file is left beside the state file.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files, want 1", len(entries))
	}
	var b bytes.Buffer
	EncodeSubscribers(&b, nil)
	if b.String() != "[]\n" {
		t.Fatalf("empty table encodes as %q", b.String())
	}
}

func TestLoadFileNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subs.json")
	os.WriteFile(path, []byte(`[{"imsi":"1"}]`), 0o600)
	_, err := LoadFile(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+": subscribers[0]: imsi:") {
		t.Fatalf("err = %v", err)
	}
}
