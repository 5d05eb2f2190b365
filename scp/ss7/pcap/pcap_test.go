package pcap

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	vectors "github.com/imcall/b2bua/scp/ss7/ss7test"
)

func TestWriteRead(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.now = func() time.Time { return time.Unix(1700000000, 123000) }
	a := netip.MustParseAddrPort("127.0.0.1:40000")
	b := netip.MustParseAddrPort("127.0.0.1:2905")
	v6a := netip.MustParseAddrPort("[::1]:40000")
	v6b := netip.MustParseAddrPort("[::1]:2905")
	data := vectors.Get(t, "m3ua-data-begin")
	beat := vectors.Get(t, "m3ua-beat")
	odd := []byte{1, 2, 3, 4, 5} // exercises chunk padding
	for _, m := range []struct {
		src, dst netip.AddrPort
		msg      []byte
	}{{a, b, data}, {b, a, beat}, {v6a, v6b, odd}} {
		if err := w.WriteM3UA(m.src, m.dst, 1, m.msg); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadM3UA(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d packets", len(got))
	}
	if got[0].Src != a || got[0].Dst != b || !bytes.Equal(got[0].Data, data) || got[0].Time.Unix() != 1700000000 {
		t.Fatalf("packet 0 %+v", got[0])
	}
	if got[1].Src != b || !bytes.Equal(got[1].Data, beat) {
		t.Fatalf("packet 1 %+v", got[1])
	}
	if got[2].Src != v6a || !bytes.Equal(got[2].Data, odd) {
		t.Fatalf("packet 2 %+v", got[2])
	}
}

func TestReadErrors(t *testing.T) {
	if _, err := ReadM3UA(bytes.NewReader([]byte("not a pcap file at all, no"))); err == nil {
		t.Fatal("garbage accepted")
	}
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	_ = w.WriteM3UA(netip.MustParseAddrPort("1.2.3.4:1"), netip.MustParseAddrPort("1.2.3.5:2"), 0, []byte{1, 0, 3, 4, 0, 0, 0, 8})
	b := buf.Bytes()
	if _, err := ReadM3UA(bytes.NewReader(b[:len(b)-3])); err == nil {
		t.Fatal("truncated record accepted")
	}
}

// FuzzSCTPData: the frame parser never panics on arbitrary packets.
func FuzzSCTPData(f *testing.F) {
	f.Add(Frame(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"), 1, 1, 0, []byte{1, 0, 3, 4, 0, 0, 0, 8}))
	f.Add(Frame(netip.MustParseAddrPort("[::1]:1"), netip.MustParseAddrPort("[::1]:2"), 1, 1, 0, []byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, b []byte) { _ = sctpData(b) })
}
