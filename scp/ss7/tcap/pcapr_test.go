package tcap

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imcall/b2bua/scp/ss7/ber"
)

// TestPcaprCorpus decodes 56 real TCAP/MAP messages (pycrate's pcapr.net
// corpus), among them indefinite-length component portions. Messages with
// definite lengths only must re-encode to the same bytes; the others are
// checked at tree level, as re-encoding makes their lengths definite.
func TestPcaprCorpus(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "..", "testdata", "ss7", "pycrate-tcapmap-pcapr.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, indefinite, notTCAP := 0, 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		n++
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(b)
		if b[0]&0xe0 != 0x60 {
			// Three entries are not TCAP at all (tshark's tcap_raw of a
			// context-tagged fragment); they must be refused.
			notTCAP++
			if err == nil {
				t.Errorf("message %d is not TCAP but decoded as %s", n, m.Kind)
			}
			continue
		}
		if err != nil {
			t.Errorf("message %d: %v\n%s", n, err, line)
			continue
		}
		out, err := m.Encode()
		if err != nil {
			t.Errorf("message %d: re-encode: %v", n, err)
			continue
		}
		if hasIndefinite(t, b) {
			indefinite++
			back, err := Decode(out)
			if err != nil || back.Kind != m.Kind || len(back.Components) != len(m.Components) {
				t.Errorf("message %d: tree changed on re-encoding: %v", n, err)
			}
			for i := range back.Components {
				if back.Components[i].Op != m.Components[i].Op || back.Components[i].InvokeID != m.Components[i].InvokeID {
					t.Errorf("message %d: component %d changed", n, i)
				}
			}
			continue
		}
		if !strings.EqualFold(hex.EncodeToString(out), line) {
			t.Errorf("message %d: re-encoding differs\n got %x\nwant %s", n, out, line)
		}
	}
	if n != 56 || indefinite < 6 || notTCAP != 3 {
		t.Fatalf("%d messages, %d with indefinite lengths, %d not TCAP", n, indefinite, notTCAP)
	}
	t.Logf("%d messages, %d with indefinite lengths, %d not TCAP", n, indefinite, notTCAP)
}

func hasIndefinite(t *testing.T, b []byte) bool {
	e, err := ber.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(ber.TLV) bool
	walk = func(e ber.TLV) bool {
		if e.Indefinite {
			return true
		}
		if !e.Constructed {
			return false
		}
		kids, err := e.Children()
		if err != nil {
			return false
		}
		for _, k := range kids {
			if walk(k) {
				return true
			}
		}
		return false
	}
	return walk(e)
}
