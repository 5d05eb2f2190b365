package sip

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/rtpproxy"
)

func TestRTPProxyAnchor(t *testing.T) {
	p, err := rtpproxy.New(rtpproxy.Config{
		BindAddr:      netip.MustParseAddr("127.0.0.1"),
		AdvertiseAddr: netip.MustParseAddr("203.0.113.10"),
		PortMin:       36000, PortMax: 36099, Drain: 10 * time.Millisecond, Workers: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var anchor MediaAnchor = RTPProxy{Proxy: p}
	ms, err := anchor.NewSession(context.Background(), "call-1")
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	sdp := func(ip string, port string) []byte {
		return []byte("v=0\r\no=- 1 1 IN IP4 " + ip + "\r\ns=-\r\nc=IN IP4 " + ip + "\r\nt=0 0\r\nm=audio " + port +
			" RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
	}
	cases := []struct {
		name       string
		offer      bool
		from, to   LegID
		body       []byte
		wantStatus int // 0: success
	}{
		{"caller's offer", true, "uas-1", "uac-1", sdp("192.0.2.1", "4000"), 0},
		{"callee's answer", false, "uac-1", "uas-1", sdp("198.51.100.7", "5000"), 0},
		{"malformed re-offer", true, "uac-1", "uas-1", []byte("garbage"), 400},
		{"IPv6 re-offer", true, "uas-1", "uac-1", []byte("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"), 488},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out []byte
			var err error
			if tc.offer {
				out, err = ms.Offer(context.Background(), tc.from, tc.to, tc.body)
			} else {
				out, err = ms.Answer(context.Background(), tc.from, tc.to, tc.body)
			}
			if tc.wantStatus != 0 {
				var f *Failure
				if !errors.As(err, &f) || f.Status != tc.wantStatus || !errors.Is(err, rtpproxy.ErrMalformedSDP) && !errors.Is(err, rtpproxy.ErrUnsupportedSDP) {
					t.Fatalf("error %v, want a %d Failure", err, tc.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), "c=IN IP4 203.0.113.10") {
				t.Fatalf("not anchored:\n%s", out)
			}
		})
	}
	rs := ms.(*RTPSession)
	rs.Answered()
	if st := rs.Stats(); len(st) != 2 || st[0].Leg != "uas-1" || st[1].Remote != "198.51.100.7:5000" {
		t.Fatalf("stats %+v", st)
	}
	select {
	case <-rs.Done():
		t.Fatalf("session ended: %v", rs.Err())
	default:
	}
}
