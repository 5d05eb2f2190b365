package ber

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	asn1ber "github.com/go-asn1-ber/asn1-ber"

	vectors "github.com/imcall/b2bua/scp/ss7/ss7test"
)

// differential checks our decoder against go-asn1-ber, an independent BER
// implementation: whatever we accept as a full tree, it must accept too and
// read as the same tree. (We are stricter, so the converse does not hold.)
func differential(t *testing.T, b []byte) {
	t.Helper()
	ours, err := Decode(b)
	if err != nil || !fullTree(ours) || hasCheckedUniversal(ours) {
		return
	}
	r := bytes.NewReader(b)
	theirs, err := asn1ber.ReadPacket(r)
	if err != nil {
		t.Fatalf("we accept % x, go-asn1-ber refuses: %v", b, err)
	}
	if r.Len() != 0 {
		t.Fatalf("go-asn1-ber leaves %d bytes of % x", r.Len(), b)
	}
	same(t, b, ours, theirs)
}

func fullTree(e TLV) bool {
	if !e.Constructed {
		return true
	}
	kids, err := e.Children()
	if err != nil {
		return false
	}
	for _, k := range kids {
		if !fullTree(k) {
			return false
		}
	}
	return true
}

// hasCheckedUniversal reports universal primitives whose value go-asn1-ber
// validates (strings, times, reals); their rules are not BER's.
func hasCheckedUniversal(e TLV) bool {
	if !e.Constructed {
		switch {
		case e.Class != Universal:
			return false
		case e.Tag <= 8 || e.Tag == 10 || e.Tag == 16 || e.Tag == 17:
			return false
		}
		return true
	}
	kids, _ := e.Children()
	for _, k := range kids {
		if hasCheckedUniversal(k) {
			return true
		}
	}
	return false
}

func same(t *testing.T, in []byte, ours TLV, theirs *asn1ber.Packet) {
	t.Helper()
	if uint8(theirs.ClassType>>6) != uint8(ours.Class) || uint64(theirs.Tag) != uint64(ours.Tag) ||
		(theirs.TagType == asn1ber.TypeConstructed) != ours.Constructed {
		t.Fatalf("% x: identifier %s, go-asn1-ber class %d tag %d type %d", in, ours, theirs.ClassType, theirs.Tag, theirs.TagType)
	}
	if !ours.Constructed {
		if !bytes.Equal(theirs.Data.Bytes(), ours.Value) {
			t.Fatalf("% x: %s value % x, go-asn1-ber % x", in, ours, ours.Value, theirs.Data.Bytes())
		}
		return
	}
	kids, _ := ours.Children()
	if len(kids) != len(theirs.Children) {
		t.Fatalf("% x: %s has %d children, go-asn1-ber %d", in, ours, len(kids), len(theirs.Children))
	}
	for i := range kids {
		same(t, in, kids[i], theirs.Children[i])
	}
}

func TestDifferentialCorpus(t *testing.T) {
	n := 0
	for _, b := range vectors.Load(t) {
		if len(b) > 0 && b[0] != 0x01 { // M3UA and SCCP are not BER
			differential(t, b)
			n++
		}
	}
	f, err := os.Open(filepath.Join("..", "..", "..", "testdata", "ss7", "pycrate-tcapmap-pcapr.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && l[0] != '#' {
			b, _ := hex.DecodeString(l)
			differential(t, b)
			n++
		}
	}
	t.Logf("%d encodings agree with go-asn1-ber", n)
}

// FuzzDifferential: random inputs, both decoders.
func FuzzDifferential(f *testing.F) {
	for _, b := range vectors.Load(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { differential(t, b) })
}
