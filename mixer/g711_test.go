package mixer

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// readTable reads a 256-entry decoding table from testdata (published values).
func readTable(t *testing.T, name string) [256]int16 {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "g711", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tab [256]int16
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, w := range strings.Fields(line) {
			v, err := strconv.Atoi(w)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if n >= 256 {
				t.Fatalf("%s: more than 256 values", name)
			}
			tab[n] = int16(v)
			n++
		}
	}
	if n != 256 {
		t.Fatalf("%s: %d values, want 256", name, n)
	}
	return tab
}

func TestDecodeMatchesPublishedTables(t *testing.T) {
	for _, tc := range []struct {
		file   string
		decode func([]int16, []byte)
	}{
		{"ulaw_decode.txt", DecodeUlaw},
		{"alaw_decode.txt", DecodeAlaw},
	} {
		t.Run(tc.file, func(t *testing.T) {
			want := readTable(t, tc.file)
			var codes [256]byte
			for i := range codes {
				codes[i] = byte(i)
			}
			var got [256]int16
			tc.decode(got[:], codes[:])
			for c := range 256 {
				if got[c] != want[c] {
					t.Errorf("code %#02x: decoded %d, published %d", c, got[c], want[c])
				}
			}
		})
	}
}

func TestEncodeKnownCodePoints(t *testing.T) {
	// Decision values of G.711 Tables 1 and 2 scaled to 16 bits (µ-law x4, A-law x8):
	// µ-law's first interval is 0..1 (14-bit) → 0xFF, 1..3 → 0xFE, 3..5 → 0xFD;
	// A-law's first is 0..2 (13-bit) → 0xD5, 2..4 → 0xD4; both clip at full scale.
	for _, tc := range []struct {
		law  Law
		in   int16
		want byte
	}{
		{PCMU, 0, 0xFF},
		{PCMU, 3, 0xFF},
		{PCMU, 4, 0xFE},
		{PCMU, 11, 0xFE},
		{PCMU, 12, 0xFD},
		{PCMU, -1, 0x7F},
		{PCMU, -4, 0x7E},
		{PCMU, 123, 0xF0},      // below decision value 31 (14-bit): segment 0, decodes to 120
		{PCMU, 124, 0xEF},      // at 31: segment 1, decodes to 132
		{PCMU, 32767, 0x80},    // full scale positive
		{PCMU, -32768, 0x00},   // full scale negative
		{PCMU, 8031 * 4, 0x80}, // G.711 Table 2 top output value, 8031
		{PCMA, 0, 0xD5},
		{PCMA, 15, 0xD5},
		{PCMA, 16, 0xD4},
		{PCMA, -1, 0x55},
		{PCMA, -16, 0x55},
		{PCMA, -17, 0x54},
		{PCMA, 256, 0xC5}, // segment 1 starts at 32 (13-bit): decodes to 264
		{PCMA, 32767, 0xAA},
		{PCMA, -32768, 0x2A},
		{PCMA, 4032 * 8, 0xAA}, // G.711 Table 1 top output value, 4032
	} {
		var out [1]byte
		tc.law.encode(out[:], []int16{tc.in})
		if out[0] != tc.want {
			t.Errorf("%v encode(%d) = %#02x, want %#02x", tc.law, tc.in, out[0], tc.want)
		}
	}
}

// Every published reconstruction value must encode back to its own code, except
// µ-law's negative zero (0x7F), which G.711 decodes to 0 like 0xFF.
func TestEncodePublishedValuesToTheirCode(t *testing.T) {
	for _, tc := range []struct {
		law  Law
		file string
	}{{PCMU, "ulaw_decode.txt"}, {PCMA, "alaw_decode.txt"}} {
		tab := readTable(t, tc.file)
		for c := range 256 {
			var out [1]byte
			tc.law.encode(out[:], tab[c:c+1])
			want := byte(c)
			if tc.law == PCMU && c == 0x7F {
				want = 0xFF
			}
			if out[0] != want {
				t.Errorf("%v: encode(%d) = %#02x, want %#02x", tc.law, tab[c], out[0], want)
			}
		}
	}
}

// The quantisation error of a round trip is bounded by half the step of the
// segment, which G.711 doubles per segment: at most 1/32 of the magnitude plus
// the first segment's half step.
func TestRoundTripErrorBounded(t *testing.T) {
	for _, law := range []Law{PCMU, PCMA} {
		for s := -32768; s <= 32767; s++ {
			var c [1]byte
			var back [1]int16
			law.encode(c[:], []int16{int16(s)})
			law.decode(back[:], c[:])
			mag := min(abs(s), 32124)
			if err := abs(int(back[0]) - s); err > mag/32+16 && abs(s) < 32124 {
				t.Fatalf("%v: %d → %#02x → %d, error %d", law, s, c[0], back[0], err)
			}
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
