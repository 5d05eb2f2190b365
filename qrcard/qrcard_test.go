package qrcard

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"strings"
	"testing"

	"github.com/imcall/b2bua/registry"
)

func TestURIRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		card Card
		uri  string
	}{
		{"imsi", Card{IMID: "alice", Domain: "im.example", MobileID: registry.MobileID{Type: registry.IMSI, Value: "001010000000001"}, Display: "Alice Smith"},
			"imcall:terminal?v=1&im=alice&domain=im.example&imsi=001010000000001&kind=legacy&display=Alice+Smith"},
		{"mac normalised", Card{IMID: "bob", MobileID: registry.MobileID{Type: registry.MAC, Value: "AABB.CCDD.EEFF"}, Kind: registry.Smart},
			"imcall:terminal?v=1&im=bob&mac=aa%3Abb%3Acc%3Add%3Aee%3Aff&kind=smart"},
		{"no mobile id", Card{IMID: "carol", Display: "Čarol & co?"},
			"imcall:terminal?v=1&im=carol&kind=legacy&display=%C4%8Carol+%26+co%3F"},
		{"msisdn", Card{IMID: "dave", MobileID: registry.MobileID{Type: registry.MSISDN, Value: "+441632960001"}},
			"imcall:terminal?v=1&im=dave&msisdn=%2B441632960001&kind=legacy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri, err := tt.card.URI()
			if err != nil {
				t.Fatal(err)
			}
			if uri != tt.uri {
				t.Fatalf("URI = %s, want %s", uri, tt.uri)
			}
			got, err := Parse(uri)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := tt.card.Validate()
			if got != want {
				t.Fatalf("Parse = %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		uri, field, rule string
	}{
		{"https://im.example/alice", "qr", "must be an imcall:terminal"},
		{"imcall:contact?v=1&im=alice", "qr", "must be an imcall:terminal"},
		{"imcall:terminal?im=alice", "qr", "version must be 1"},
		{"imcall:terminal?v=2&im=alice", "qr", "version must be 1"},
		{"imcall:terminal?v=1", "im_id", "is required"},
		{"imcall:terminal?v=1&im=alice&im=bob", "qr", `key "im" must appear exactly once`},
		{"imcall:terminal?v=1&im=alice&color=red", "qr", `unknown key "color"`},
		{"imcall:terminal?v=1&im=alice&display=", "qr", `key "display" must not be empty`},
		{"imcall:terminal?v=1&im=al%20ice", "im_id", "must be 1 to 64"},
		{"imcall:terminal?v=1&im=alice&imsi=12", "imsi", "must be 6 to 15 digits"},
		{"imcall:terminal?v=1&im=alice&mac=zz", "mac", "must be an EUI-48"},
		{"imcall:terminal?v=1&im=alice&imsi=001010000000001&mac=aabbccddeeff", "qr", "at most one of"},
		{"imcall:terminal?v=1&im=alice&kind=robot", "kind", "must be legacy or smart"},
		{"imcall:terminal?v=1&im=alice&domain=not_a_domain", "domain", "must be a DNS name"},
		{"imcall:terminal?v=1&im=alice&display=%07bell", "display", "control"},
		{"imcall:terminal?v=1&im=alice#frag", "qr", "must be an imcall:terminal"},
		{"imcall:terminal?v=1&im=" + strings.Repeat("a", 2000), "qr", "at most 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.uri[:min(len(tt.uri), 60)], func(t *testing.T) {
			_, err := Parse(tt.uri)
			var ve *registry.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse(%q) err = %v, want a ValidationError", tt.uri, err)
			}
			if ve.Field != tt.field || !strings.Contains(ve.Rule, tt.rule) {
				t.Fatalf("Parse(%q) = %q, want field %s and rule containing %q", tt.uri, err, tt.field, tt.rule)
			}
		})
	}
}

func TestPNGRoundTrip(t *testing.T) {
	card := Card{IMID: "alice", Domain: "im.example", MobileID: registry.MobileID{Type: registry.IMSI, Value: "001010000000001"}, Kind: registry.Legacy, Display: "Alice Smith"}
	for _, size := range []int{256, 512, -4} {
		b, err := EncodePNG(card, size)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if got != card {
			t.Fatalf("size %d: decoded %+v, want %+v", size, got, card)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	blank := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range blank.Pix {
		blank.Pix[i] = 0xff
	}
	var pngBlank bytes.Buffer
	if err := png.Encode(&pngBlank, blank); err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(&pngBlank); !errors.Is(err, ErrNoCode) {
		t.Fatalf("blank picture: err = %v, want ErrNoCode", err)
	}
	var ve *registry.ValidationError
	if _, err := Decode(strings.NewReader("not a picture")); !errors.As(err, &ve) || ve.Field != "qr" {
		t.Fatalf("not a picture: err = %v, want a qr ValidationError", err)
	}
}

func TestWriteTerminal(t *testing.T) {
	card := Card{IMID: "alice", MobileID: registry.MobileID{Type: registry.IMSI, Value: "001010000000001"}}
	for _, invert := range []bool{false, true} {
		var b bytes.Buffer
		if err := WriteTerminal(&b, card, invert); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		width := len([]rune(lines[0]))
		// A version N code is 17+4N modules plus an 8-module quiet zone;
		// two module rows share a line.
		if width < 29 || len(lines) != (width+1)/2 {
			t.Fatalf("invert=%v: %d lines of width %d, want a square code", invert, len(lines), width)
		}
		for _, l := range lines {
			if len([]rune(l)) != width || strings.Trim(l, " █▀▄") != "" {
				t.Fatalf("invert=%v: line %q is not %d half blocks", invert, l, width)
			}
		}
		// The quiet zone is light: blank normally, solid when inverted.
		quiet := " "
		if invert {
			quiet = "█"
		}
		if lines[0] != strings.Repeat(quiet, width) {
			t.Fatalf("invert=%v: first line %q is not quiet zone", invert, lines[0])
		}
	}
}
