// Package qrcard carries a terminal's identity in a QR code, so that a caller
// can scan the code on the callee's phone (or a printed card) and add the
// callee to the caller's contacts.
//
// # URI form
//
// The QR code holds one URI, version 1:
//
//	imcall:terminal?v=1&im=alice&domain=im.example&imsi=001010000000001&kind=legacy&display=Alice%20Smith
//
// The scheme is "imcall" and the opaque part is "terminal". The query holds,
// in this order when encoded:
//
//   - v: the form's version, "1"; required. A reader rejects any other
//     version rather than guess at fields it does not know.
//   - im: the IM ID (registry.ParseIMID); required.
//   - domain: the IM domain (registry.ParseDomain); optional.
//   - exactly one of imsi (registry.ParseIMSI), mac (registry.ParseMAC) or
//     msisdn (registry.ParseMSISDN): the terminal's mobile identity, in its
//     normalised form; optional, at most one.
//   - kind: legacy or smart (registry.ParseKind); optional, legacy if absent.
//   - display: the display name (registry.ParseDisplay); optional.
//
// Values are percent-encoded as in an HTML form (RFC 3986 section 3.4 with
// '+' for space). A reader is strict: an unknown, repeated or empty key, a
// second mobile identity or any value its validator refuses is an error, so
// a damaged or forged code cannot put a malformed contact in an address book.
package qrcard

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // a scanned photo may be a JPEG
	_ "image/png"
	"io"
	"net/url"
	"strings"

	"github.com/imcall/b2bua/registry"
	"github.com/makiuchi-d/gozxing"
	zxqrcode "github.com/makiuchi-d/gozxing/qrcode"
	qrcode "github.com/skip2/go-qrcode"
)

// Scheme and Opaque name the URI form; Version is the form's version.
const (
	Scheme  = "imcall"
	Opaque  = "terminal"
	Version = "1"
)

// maxURI bounds what Parse accepts: a version 1 card is far shorter, and a
// bound keeps a hostile code from costing more than it should.
const maxURI = 1024

// Card is a terminal's identity as a QR code carries it.
type Card struct {
	IMID     string            // the IM ID, e.g. "alice"
	Domain   string            // the IM domain, may be empty
	MobileID registry.MobileID // may be zero
	Kind     registry.Kind     // legacy or smart; empty means legacy
	Display  string            // may be empty
}

// Validate checks and normalises every field with the registry's validators.
func (c Card) Validate() (Card, error) {
	var err error
	if c.IMID, err = registry.ParseIMID(c.IMID); err != nil {
		return Card{}, err
	}
	if c.Domain, err = registry.ParseDomain(c.Domain); err != nil {
		return Card{}, err
	}
	if c.MobileID.Type != "" || c.MobileID.Value != "" {
		if c.MobileID, err = registry.ParseMobileIDValue(c.MobileID); err != nil {
			return Card{}, err
		}
	}
	if c.Kind, err = registry.ParseKind(string(c.Kind)); err != nil {
		return Card{}, err
	}
	if c.Display, err = registry.ParseDisplay(c.Display); err != nil {
		return Card{}, err
	}
	return c, nil
}

// URI gives the card's version 1 URI, with its keys in the documented order.
// It validates the card first.
func (c Card) URI() (string, error) {
	c, err := c.Validate()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(Scheme + ":" + Opaque + "?v=" + Version)
	add := func(k, v string) {
		if v != "" {
			b.WriteString("&" + k + "=" + url.QueryEscape(v))
		}
	}
	add("im", c.IMID)
	add("domain", c.Domain)
	if !c.MobileID.IsZero() {
		add(string(c.MobileID.Type), c.MobileID.Value)
	}
	add("kind", string(c.Kind))
	add("display", c.Display)
	return b.String(), nil
}

// Contact turns the card into an entry of owner's address book.
func (c Card) Contact(owner string) registry.Contact {
	return registry.Contact{Owner: owner, IMID: c.IMID, Domain: c.Domain, MobileID: c.MobileID, Display: c.Display}
}

// Parse reads a version 1 URI strictly (see the package documentation).
// Errors are *registry.ValidationError naming the field: "qr" for the URI's
// shape, else the field whose value is wrong.
func Parse(s string) (Card, error) {
	bad := func(rule string) (Card, error) {
		return Card{}, &registry.ValidationError{Field: "qr", Rule: rule}
	}
	if len(s) > maxURI {
		return bad(fmt.Sprintf("URI must be at most %d bytes", maxURI))
	}
	u, err := url.Parse(s)
	if err != nil || !strings.EqualFold(u.Scheme, Scheme) || u.Opaque != Opaque || u.Fragment != "" {
		return bad("must be an " + Scheme + ":" + Opaque + "?v=" + Version + "&im=... URI")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query must be form-encoded")
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return bad(fmt.Sprintf("key %q must appear exactly once", k))
		}
		if vs[0] == "" {
			return bad(fmt.Sprintf("key %q must not be empty", k))
		}
		switch k {
		case "v", "im", "domain", "imsi", "mac", "msisdn", "kind", "display":
		default:
			return bad(fmt.Sprintf("unknown key %q", k))
		}
	}
	if v := q.Get("v"); v != Version {
		return bad("version must be " + Version)
	}
	if q.Get("im") == "" {
		return Card{}, &registry.ValidationError{Field: "im_id", Rule: "is required"}
	}
	c := Card{IMID: q.Get("im"), Domain: q.Get("domain"), Kind: registry.Kind(q.Get("kind")), Display: q.Get("display")}
	n := 0
	for _, t := range []registry.MobileIDType{registry.IMSI, registry.MAC, registry.MSISDN} {
		if v := q.Get(string(t)); v != "" {
			n++
			c.MobileID = registry.MobileID{Type: t, Value: v}
		}
	}
	if n > 1 {
		return bad("at most one of imsi, mac, msisdn")
	}
	return c.Validate()
}

// level is the error correction used: Medium (15%) survives a scuffed
// print or a phone screen's glare while keeping the code small.
const level = qrcode.Medium

// EncodePNG renders the card's URI as a PNG of size×size pixels (a
// negative size means that many pixels per module).
func EncodePNG(c Card, size int) ([]byte, error) {
	uri, err := c.URI()
	if err != nil {
		return nil, err
	}
	png, err := qrcode.Encode(uri, level, size)
	if err != nil {
		return nil, fmt.Errorf("qrcard: encode: %w", err)
	}
	return png, nil
}

// WriteTerminal draws the card's QR code as text: each character cell holds
// two modules, one above the other, drawn with the Unicode half blocks
// (U+2580, U+2584, U+2588), so the code keeps its square shape on a
// terminal whose cells are twice as tall as wide. Dark modules are drawn
// with the foreground colour; invert swaps that for terminals with light
// text on a dark background, since most readers expect dark on light.
func WriteTerminal(w io.Writer, c Card, invert bool) error {
	uri, err := c.URI()
	if err != nil {
		return err
	}
	q, err := qrcode.New(uri, level)
	if err != nil {
		return fmt.Errorf("qrcard: encode: %w", err)
	}
	bm := q.Bitmap() // includes the 4-module quiet zone (ISO/IEC 18004 section 6.3.8)
	var b bytes.Buffer
	for y := 0; y < len(bm); y += 2 {
		for x := range bm[y] {
			top := bm[y][x] != invert
			bottom := invert // a missing last row is quiet zone: light
			if y+1 < len(bm) {
				bottom = bm[y+1][x] != invert
			}
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	_, err = w.Write(b.Bytes())
	return err
}

// ErrNoCode means the picture holds no readable QR code.
var ErrNoCode = errors.New("no readable QR code in the picture")

// Decode reads a PNG (or JPEG) picture, finds the QR code in it and parses
// the URI it holds. A picture without a code gives an error wrapping
// ErrNoCode; a code holding anything but a valid card gives the
// *registry.ValidationError of Parse.
func Decode(r io.Reader) (Card, error) {
	img, _, err := image.Decode(r)
	if err != nil {
		return Card{}, &registry.ValidationError{Field: "qr", Rule: "must be a PNG or JPEG picture: " + err.Error()}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return Card{}, fmt.Errorf("qrcard: %w: %v", ErrNoCode, err)
	}
	hints := map[gozxing.DecodeHintType]interface{}{gozxing.DecodeHintType_TRY_HARDER: true}
	res, err := zxqrcode.NewQRCodeReader().Decode(bmp, hints)
	if err != nil {
		return Card{}, fmt.Errorf("qrcard: %w: %v", ErrNoCode, err)
	}
	return Parse(res.GetText())
}
