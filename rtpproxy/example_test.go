package rtpproxy_test

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/imcall/b2bua/rtpproxy"
)

// A call anchored by the proxy: the caller's offer goes to the callee with
// the proxy's address and port, the callee's answer comes back the same way.
// Which ports the proxy takes from its range depends on what else holds
// ports on the host, so the example shows only that they are in the range.
func Example() {
	const portMin, portMax = 37000, 37099
	proxy, err := rtpproxy.New(rtpproxy.Config{
		BindAddr:      netip.MustParseAddr("127.0.0.1"),
		AdvertiseAddr: netip.MustParseAddr("203.0.113.10"), // public address behind NAT
		PortMin:       portMin,
		PortMax:       portMax,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer proxy.Close()

	call, _ := proxy.NewCall(context.Background(), rtpproxy.CallConfig{ID: "example"})
	defer call.Close()
	offer := "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n" +
		"m=audio 49170 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
	toCallee, _ := call.RewriteOffer("caller", "callee", []byte(offer))
	answer := "v=0\r\no=bob 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n" +
		"m=audio 5004 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
	toCaller, _ := call.RewriteAnswer("callee", "caller", []byte(answer))
	call.Answered() // the 2xx: media supervision starts

	for _, sdp := range [][]byte{toCallee, toCaller} {
		for _, line := range strings.Split(string(sdp), "\r\n") {
			if strings.HasPrefix(line, "c=") {
				fmt.Println(line)
			}
			if f := strings.Fields(line); strings.HasPrefix(line, "m=") && len(f) > 1 {
				port, _ := strconv.Atoi(f[1])
				inRange := port >= portMin && port <= portMax
				fmt.Println(f[0], "port in range:", inRange, strings.Join(f[2:], " "))
			}
		}
	}
	// Output:
	// c=IN IP4 203.0.113.10
	// m=audio port in range: true RTP/AVP 0 101
	// c=IN IP4 203.0.113.10
	// m=audio port in range: true RTP/AVP 0 101
}
