package sip

import (
	"testing"
	"time"
)

func TestCorrelate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	alice := device{Path: pathData, User: "alice", MSISDNs: []string{"+15550001111"}}
	aliceCarrier := device{Path: pathCarrier, Number: "+15550001111"}
	mallory := device{Path: pathData, User: "mallory", MSISDNs: []string{"+15550009999"}}
	otherNumber := device{Path: pathCarrier, Number: "+15550002222"}
	aliceOther := device{Path: pathData, User: "alice", MSISDNs: []string{"+15550001111"}} // a second client of alice
	near := func(d device, up bool) nearView {
		return nearView{CallID: "c1", LocalTag: "ours", RemoteTag: "theirs", Device: d, Up: up, Live: true}
	}
	ringing := func(d device) sessionView {
		return sessionView{Far: "bob", FirstAt: t0, Near: []nearView{near(d, false)}}
	}
	answered := func(d device) sessionView {
		return sessionView{Far: "bob", FirstAt: t0, Near: []nearView{near(d, true)}}
	}
	join := &joinRef{CallID: "c1", ToTag: "ours", FromTag: "theirs"}
	tests := []struct {
		name   string
		q      joinQuery
		ss     []sessionView
		want   int
		status int
	}{
		{"carrier leg joins data leg while ringing", joinQuery{Far: "bob", Device: aliceCarrier, At: t0.Add(time.Second)}, []sessionView{ringing(alice)}, 0, 0},
		{"data leg joins carrier leg after the answer", joinQuery{Far: "bob", Device: alice, At: t0.Add(9 * time.Second)}, []sessionView{answered(aliceCarrier)}, 0, 0},
		{"the right session of several", joinQuery{Far: "bob", Device: aliceCarrier, At: t0.Add(time.Second)}, []sessionView{ringing(mallory), ringing(alice)}, 1, 0},
		{"at the window's end", joinQuery{Far: "bob", Device: aliceCarrier, At: t0.Add(10 * time.Second)}, []sessionView{ringing(alice)}, 0, 0},
		{"after the window: a new call", joinQuery{Far: "bob", Device: aliceCarrier, At: t0.Add(10*time.Second + 1)}, []sessionView{ringing(alice)}, -1, 0},
		{"other far party: a new call", joinQuery{Far: "carol", Device: aliceCarrier, At: t0.Add(time.Second)}, []sessionView{ringing(alice)}, -1, 0},
		{"stranger to the same far party: a new call", joinQuery{Far: "bob", Device: mallory, At: t0.Add(time.Second)}, []sessionView{answered(aliceCarrier)}, -1, 0},
		{"another number to the same far party: a new call", joinQuery{Far: "bob", Device: otherNumber, At: t0.Add(time.Second)}, []sessionView{ringing(alice)}, -1, 0},
		{"same user on the same path: a new call", joinQuery{Far: "bob", Device: aliceOther, At: t0.Add(time.Second)}, []sessionView{ringing(alice)}, -1, 0},
		{"same number twice: a new call", joinQuery{Far: "bob", Device: aliceCarrier, At: t0.Add(time.Second)}, []sessionView{ringing(aliceCarrier)}, -1, 0},
		{"unauthenticated leg: a new call", joinQuery{Far: "bob", Device: device{}, At: t0.Add(time.Second)}, []sessionView{ringing(aliceCarrier)}, -1, 0},
		{"ending session: a new call", joinQuery{Far: "bob", Device: aliceCarrier, At: t0.Add(time.Second)}, []sessionView{{Far: "bob", FirstAt: t0, Ending: true, Near: []nearView{near(alice, true)}}}, -1, 0},
		{"session with both paths: a new call", joinQuery{Far: "bob", Device: aliceCarrier, At: t0.Add(time.Second)}, []sessionView{{Far: "bob", FirstAt: t0, Near: []nearView{near(alice, true), near(aliceCarrier, true)}}}, -1, 0},
		{"a path that came back within the window", joinQuery{Far: "bob", Device: aliceCarrier, At: t0.Add(5 * time.Second)}, []sessionView{{Far: "bob", FirstAt: t0, Near: []nearView{near(alice, true), {Device: aliceCarrier}}}}, 0, 0},

		{"Join by the same user", joinQuery{Far: "bob", Device: aliceOther, Join: join, At: t0.Add(time.Minute)}, []sessionView{answered(alice)}, 0, 0},
		{"Join by the carrier path", joinQuery{Far: "bob", Device: aliceCarrier, Join: join, At: t0.Add(time.Minute)}, []sessionView{answered(alice)}, 0, 0},
		{"Join by a stranger", joinQuery{Far: "bob", Device: mallory, Join: join, At: t0.Add(time.Second)}, []sessionView{answered(alice)}, -1, 403},
		{"Join unauthenticated", joinQuery{Far: "bob", Device: device{}, Join: join, At: t0.Add(time.Second)}, []sessionView{answered(alice)}, -1, 403},
		{"Join to another far party", joinQuery{Far: "carol", Device: alice, Join: join, At: t0.Add(time.Second)}, []sessionView{answered(alice)}, -1, 403},
		{"Join naming no dialog", joinQuery{Far: "bob", Device: alice, Join: &joinRef{CallID: "c1", ToTag: "ours", FromTag: "other"}, At: t0}, []sessionView{answered(alice)}, -1, 481},
		{"Join naming an early dialog", joinQuery{Far: "bob", Device: alice, Join: join, At: t0}, []sessionView{ringing(alice)}, -1, 481},
		{"Join naming an ended leg", joinQuery{Far: "bob", Device: alice, Join: join, At: t0}, []sessionView{{Far: "bob", FirstAt: t0, Near: []nearView{{CallID: "c1", LocalTag: "ours", RemoteTag: "theirs", Device: alice, Up: true}}}}, -1, 481},
		{"Join to a session with both paths", joinQuery{Far: "bob", Device: alice, Join: join, At: t0}, []sessionView{{Far: "bob", FirstAt: t0, Near: []nearView{near(alice, true), near(aliceCarrier, true)}}}, -1, 486},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Window = 10 * time.Second
			got, f := correlate(tt.q, tt.ss)
			status := 0
			if f != nil {
				status = f.Status
			}
			if got != tt.want || status != tt.status {
				t.Fatalf("correlate = %d, %d; want %d, %d", got, status, tt.want, tt.status)
			}
		})
	}
}

func TestParseJoin(t *testing.T) {
	tests := []struct {
		in      string
		want    joinRef
		wantErr bool
	}{
		{"98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff", joinRef{CallID: "98732@sip.example.com", ToTag: "ff87ff", FromTag: "r33th4x0r"}, false},
		{" abc ; To-Tag = 1 ; from-tag=2", joinRef{CallID: "abc", ToTag: "1", FromTag: "2"}, false},
		{"abc;to-tag=1", joinRef{}, true},
		{";to-tag=1;from-tag=2", joinRef{}, true},
	}
	for _, tt := range tests {
		got, err := parseJoin(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseJoin(%q) = %+v, %v", tt.in, got, err)
		}
	}
}
