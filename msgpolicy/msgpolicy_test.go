package msgpolicy

import (
	"errors"
	"strings"
	"testing"

	"github.com/imcall/b2bua/registry"
)

func TestDecide(t *testing.T) {
	const (
		text  = registry.CapText
		audio = registry.CapAudio
		image = registry.CapImage
		video = registry.CapVideo
	)
	base := func(ct string, caps registry.Caps) Input {
		return Input{ContentType: ct, BodySize: 100, MaxSize: 1000, Transport: "TCP", WireSize: 600, Reach: Online, Caps: caps, ForwardFits: true}
	}
	with := func(in Input, f func(*Input)) Input { f(&in); return in }
	tests := []struct {
		name   string
		in     Input
		action Action
		status int
	}{
		{"text to a text terminal", base("text/plain", audio|text), Forward, 0},
		{"image to an image terminal", base("image/png", text|image), Forward, 0},
		{"image to a text-only terminal", base("image/jpeg", audio|text), StoreLink, 0},
		{"audio to an audio terminal", base("audio/amr", audio|text), Forward, 0},
		{"video to a text terminal", base("video/mp4", audio|text), StoreLink, 0},
		{"video to a video terminal", base("video/mp4", text|video), Forward, 0},
		{"image too big for the UDP leg", with(base("image/png", text|image), func(i *Input) { i.ForwardFits = false }), StoreLink, 0},
		{"text too big for the UDP leg", with(base("text/plain", text), func(i *Input) { i.ForwardFits = false }), StoreLink, 0},
		{"terminal shows no text", base("image/png", audio), Reject, 488},
		{"text to a terminal without text", base("text/plain", audio), Reject, 488},
		{"over the size limit", with(base("image/png", image), func(i *Input) { i.BodySize = 1001 }), Reject, 413},
		{"over the size limit beats UDP", with(base("image/png", image), func(i *Input) { i.BodySize, i.Transport, i.WireSize = 2000, "UDP", 2400 }), Reject, 413},
		{"over the MTU on UDP", with(base("image/png", image), func(i *Input) { i.Transport, i.WireSize = "UDP", 1301 }), Reject, 513},
		{"exactly the MTU rule on UDP", with(base("image/png", image), func(i *Input) { i.Transport, i.WireSize = "udp", 1300 }), Forward, 0},
		{"large over TCP", with(base("image/png", image), func(i *Input) { i.WireSize = 5000 }), Forward, 0},
		{"unsupported type", base("application/zip", 15), Reject, 415},
		{"text/html is not text/plain", base("text/html", 15), Reject, 415},
		{"unsupported beats absent", with(base("application/zip", 15), func(i *Input) { i.Reach = Absent }), Reject, 415},
		{"busy", with(base("text/plain", text), func(i *Input) { i.Reach = Busy }), Defer, 0},
		{"absent", with(base("image/png", text), func(i *Input) { i.Reach = Absent }), Defer, 0},
		{"unknown user", with(base("text/plain", text), func(i *Input) { i.Reach, i.RouteStatus = Unreachable, 404 }), Reject, 404},
		{"SCP down", with(base("text/plain", text), func(i *Input) { i.Reach, i.RouteStatus = Unreachable, 503 }), Reject, 503},
		{"unreachable without status", with(base("text/plain", text), func(i *Input) { i.Reach = Unreachable }), Reject, 500},
		{"in dialog ignores reach", with(base("image/png", text), func(i *Input) { i.Reach, i.InDialog = Absent, true }), StoreLink, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.in)
			if d.Action != tt.action || d.Status != tt.status {
				t.Errorf("Decide = %v %d (%s), want %v %d", d.Action, d.Status, d.Text, tt.action, tt.status)
			}
			if d.Action == Reject && d.Text == "" && tt.in.RouteText == "" && tt.status != 404 && tt.status != 503 && tt.status != 500 {
				t.Errorf("a rejection without a reason")
			}
		})
	}
}

func TestUnwrap(t *testing.T) {
	cpimBody := "From: <sip:alice@im.example>\r\nTo: <sip:bob@im.example>\r\n\r\nContent-Type: image/png\r\n\r\n\x89PNG"
	tests := []struct {
		name, ctype, body string
		wantType, wantRaw string
		wantData          string
		cpim              bool
		wantErr           bool
	}{
		{name: "plain text", ctype: "text/plain;charset=UTF-8", body: "hi", wantType: "text/plain", wantRaw: "text/plain;charset=UTF-8", wantData: "hi"},
		{name: "image", ctype: "IMAGE/PNG", body: "x", wantType: "image/png", wantRaw: "IMAGE/PNG", wantData: "x"},
		{name: "cpim image", ctype: "message/cpim", body: cpimBody, wantType: "image/png", wantRaw: "image/png", wantData: "\x89PNG", cpim: true},
		{name: "cpim without content type", ctype: "message/cpim", body: "From: x\r\n\r\n\r\nhello", wantErr: true},
		{name: "cpim in cpim", ctype: "message/cpim", body: "From: x\r\n\r\nContent-Type: message/cpim\r\n\r\n", wantErr: true},
		{name: "broken cpim", ctype: "message/cpim", body: "garbage", wantErr: true},
		{name: "bad content type", ctype: "///", body: "x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Unwrap(tt.ctype, []byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("err = %v, want ErrUnsupported", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Type != tt.wantType || c.RawType != tt.wantRaw || string(c.Data) != tt.wantData || (c.CPIM != nil) != tt.cpim {
				t.Errorf("Unwrap = %+v", c)
			}
		})
	}
}

func TestLinkText(t *testing.T) {
	got := LinkText("alice", "image/png", 12345, "http://192.0.2.1:8080/m/abc")
	want := "alice sent you an image (image/png, 12.3 kB): http://192.0.2.1:8080/m/abc"
	if got != want {
		t.Errorf("LinkText = %q, want %q", got, want)
	}
	if !strings.Contains(LinkText("alice", "video/mp4", 3_500_000, "L"), "a video (video/mp4, 3.5 MB)") {
		t.Error("video size wording")
	}
}
