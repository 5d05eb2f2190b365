package sip

import (
	"bytes"
	"encoding/hex"
	"hash/fnv"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// rfc2543Branch gives a request in RFC 2543 form (a top Via without an RFC
// 3261 branch) a branch of its own, so that sipgo makes a transaction of it
// instead of a stateless 400: sipgo keys such requests by the From tag,
// which RFC 2543 did not require (RFC 4475 §3.4.1, inv2543, is to be
// processed). The branch is a hash of what RFC 3261 §17.2.3 matches an RFC
// 2543 request by (Request-URI, From, Call-ID, CSeq number, top Via), so a
// retransmission, the ACK of a non-2xx and a CANCEL get the same one. It
// returns nil (nothing to do) for a request with an RFC 3261 branch, a From
// tag, or a top Via line that holds several values.
func rfc2543Branch(data []byte) []byte {
	head, _, ok := bytes.Cut(data, []byte("\r\n\r\n"))
	if !ok {
		return nil
	}
	lines := bytes.Split(head, []byte("\r\n"))
	reqLine := lines[0]
	sp1, sp2 := bytes.IndexByte(reqLine, ' '), bytes.LastIndexByte(reqLine, ' ')
	if sp1 < 0 || sp2 <= sp1 {
		return nil
	}
	h := fnv.New64a()
	h.Write(reqLine[sp1+1 : sp2])
	via := -1
	for i, l := range lines[1:] {
		name, v, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.ToLower(bytes.TrimSpace(name))
		switch string(name) {
		case "via", "v":
			if via >= 0 {
				continue
			}
			if bytes.Contains(v, []byte("branch=z9hG4bK")) || bytes.IndexByte(v, ',') >= 0 {
				return nil
			}
			via = i + 1
			h.Write(v)
		case "from", "f":
			if bytes.Contains(bytes.ToLower(v), []byte("tag=")) {
				return nil
			}
			h.Write(v)
		case "call-id", "i":
			h.Write(v)
		case "cseq":
			num, _, _ := bytes.Cut(bytes.TrimSpace(v), []byte(" "))
			h.Write(num)
		}
	}
	if via < 0 {
		return nil
	}
	branch := ";branch=z9hG4bK2543-" + hex.EncodeToString(h.Sum(nil))
	out := make([]byte, 0, len(data)+len(branch))
	for i, l := range lines {
		out = append(out, l...)
		if i == via {
			out = append(bytes.TrimRight(out, " \t"), branch...)
		}
		out = append(out, "\r\n"...)
	}
	return append(out, data[len(head)+2:]...)
}

// rfc2543Contact gives an INVITE in RFC 2543 form (one rfc2543Branch
// marked) that has no Contact the From address as its Contact: RFC 2543
// §6.13 sends later requests of the call there. It reports whether it did;
// an RFC 3261 INVITE without a Contact stays malformed (§8.1.1.8).
func rfc2543Contact(req *sipmsg.Request) bool {
	via, from := req.Via(), req.From()
	if via == nil || from == nil {
		return false
	}
	if b, _ := via.Params.Get("branch"); !strings.HasPrefix(b, "z9hG4bK2543-") {
		return false
	}
	req.AppendHeader(&sipmsg.ContactHeader{Address: *from.Address.Clone()})
	return true
}
