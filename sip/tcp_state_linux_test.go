package sip

import (
	"net"
	"testing"
	"time"

	"github.com/imcall/b2bua/connlimit"
)

// TestPeerClosed: a connection whose peer closed is known as such before
// anything reads the end, through the listener's wrappers too.
func TestPeerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lim := connlimit.New(ln, connlimit.Config{MaxConns: 4, MaxConnsPerSource: 4})
	for _, wrap := range []struct {
		name string
		conn func(net.Conn) net.Conn
	}{
		{"TCP", func(c net.Conn) net.Conn { return c.(interface{ NetConn() net.Conn }).NetConn() }},
		{"connlimit", func(c net.Conn) net.Conn { return c }},
	} {
		t.Run(wrap.name, func(t *testing.T) {
			peer, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c, err := lim.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sc := wrap.conn(c)
			if peerClosed(sc) {
				t.Fatal("an open connection is taken for closed")
			}
			peer.Close()
			deadline := time.Now().Add(2 * time.Second)
			for !peerClosed(sc) {
				if time.Now().After(deadline) {
					t.Fatal("the peer's close is not seen")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
