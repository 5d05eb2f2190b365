package cpim

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// rfcExample is the example of RFC 3862 §3.3 (a trimmed copy).
const rfcExample = "From: MR SANDERS <im:piglet@100akerwood.com>\r\n" +
	"To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n" +
	"DateTime: 2000-12-13T13:40:00-08:00\r\n" +
	"Subject: the weather will be fine today\r\n" +
	"Subject:;lang=fr beau temps prevu pour aujourd'hui\r\n" +
	"NS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\n" +
	"Require: MyFeatures.VitalMessageOption\r\n" +
	"MyFeatures.VitalMessageOption: Confirmation-requested\r\n" +
	"\r\n" +
	"Content-type: text/xml; charset=utf-8\r\n" +
	"Content-ID: <1234567890@foo.com>\r\n" +
	"\r\n" +
	"<body>\r\nHere is the text of my message.\r\n</body>\r\n"

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantErr  bool
		from     string
		ctype    string
		rawCtype string
		body     string
		nHeaders int
	}{
		{name: "RFC 3862 example", in: rfcExample, from: "MR SANDERS <im:piglet@100akerwood.com>",
			ctype: "text/xml", rawCtype: "text/xml; charset=utf-8", body: "<body>\r\nHere is the text of my message.\r\n</body>\r\n", nHeaders: 8},
		{name: "bare LF", in: "From: <sip:a@x>\nTo: <sip:b@x>\n\nContent-Type: image/png\n\n\x89PNG\r\n\x1a\n", from: "<sip:a@x>",
			ctype: "image/png", rawCtype: "image/png", body: "\x89PNG\r\n\x1a\n", nHeaders: 2},
		{name: "folded content header", in: "From: <sip:a@x>\r\n\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n\r\nhi", from: "<sip:a@x>",
			ctype: "text/plain", rawCtype: "text/plain; charset=utf-8", body: "hi", nHeaders: 1},
		{name: "no message headers", in: "\r\nContent-Type: text/plain\r\n\r\n", ctype: "text/plain", rawCtype: "text/plain"},
		{name: "content section not ended", in: "From: <sip:a@x>\r\n\r\nContent-Type: text/plain\r\n", wantErr: true},
		{name: "no blank line", in: "From: <sip:a@x>\r\n", wantErr: true},
		{name: "line without colon", in: "From <sip:a@x>\r\n\r\n\r\n", wantErr: true},
		{name: "bad header name", in: "Fr om: x\r\n\r\n\r\n", wantErr: true},
		{name: "leading continuation", in: " x\r\n\r\n\r\n", wantErr: true},
		{name: "too many headers", in: strings.Repeat("A: b\r\n", MaxHeaders+1) + "\r\n\r\n", wantErr: true},
		{name: "line too long", in: "A: " + strings.Repeat("b", MaxHeaderLine) + "\r\n\r\n\r\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Get("From"); got != tt.from {
				t.Errorf("From = %q, want %q", got, tt.from)
			}
			if got := m.ContentType(); got != tt.ctype {
				t.Errorf("ContentType = %q, want %q", got, tt.ctype)
			}
			if got := m.RawContentType(); got != tt.rawCtype {
				t.Errorf("RawContentType = %q, want %q", got, tt.rawCtype)
			}
			if string(m.Body) != tt.body {
				t.Errorf("Body = %q, want %q", m.Body, tt.body)
			}
			if len(m.Headers) != tt.nHeaders {
				t.Errorf("%d message headers, want %d", len(m.Headers), tt.nHeaders)
			}
		})
	}
}

func TestGetIsCaseSensitive(t *testing.T) {
	m, err := Parse([]byte(rfcExample))
	if err != nil {
		t.Fatal(err)
	}
	if m.Get("from") != "" || m.Get("Subject") != "the weather will be fine today" {
		t.Errorf("Get: from=%q Subject=%q", m.Get("from"), m.Get("Subject"))
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	m := &Message{
		Headers: []Header{{"From", "<sip:alice@im.example>"}, {"To", "<sip:bob@im.example>"}, {"DateTime", "2026-01-02T03:04:05Z"}},
		Content: []Header{{"Content-Type", "image/jpeg"}},
		Body:    []byte{0xff, 0xd8, 0xff, '\r', '\n', '\r', '\n', 0},
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := "From: <sip:alice@im.example>\r\nTo: <sip:bob@im.example>\r\nDateTime: 2026-01-02T03:04:05Z\r\n\r\nContent-Type: image/jpeg\r\n\r\n"
	if !bytes.HasPrefix(b, []byte(want)) {
		t.Errorf("Encode = %q", b)
	}
	back, err := Parse(b)
	if err != nil || !reflect.DeepEqual(back, m) {
		t.Errorf("Parse(Encode(m)) = %+v, %v; want %+v", back, err, m)
	}
	for _, bad := range []Header{{"Bad Name", "x"}, {"X", "a\r\nInjected: y"}, {"", "x"}} {
		if _, err := (&Message{Headers: []Header{bad}}).Encode(); err == nil {
			t.Errorf("Encode(%q) succeeded", bad)
		}
	}
}

// FuzzParse: whatever parses encodes, and reads back the same.
func FuzzParse(f *testing.F) {
	f.Add([]byte(rfcExample))
	f.Add([]byte("From: <sip:a@x>\n\nContent-Type: image/png\n\n\x89PNG"))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte("A: b\r\n c\r\n\r\nContent-Type: text/plain;\r\n\tcharset=utf-8\r\n\r\nbody"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Parse(in)
		if err != nil {
			return
		}
		_ = m.ContentType()
		b, err := m.Encode()
		if err != nil {
			t.Fatalf("Encode of a parsed message: %v", err)
		}
		back, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(Encode(m)): %v", err)
		}
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, back)
		}
	})
}
