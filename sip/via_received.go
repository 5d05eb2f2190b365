package sip

import (
	"bytes"
	"net/netip"
)

// viaReceived rewrites the top Via of a request read whole from a stream
// connection so that it carries received=<source address>, dropping any
// received or rport value the sender wrote itself (RFC 3261 §18.2.1, RFC
// 3581 §4: those are the receiver's to add). sipgo picks a response's
// connection from the top Via when the request's connection is gone, and
// without this it would dial the sent-by host: any name or address the
// message chose. With it, that fallback is the source address and the
// sent-by port, as RFC 3261 §18.2.2 says. It returns nil when the Via
// needs no change or cannot be rewritten safely (folded, missing).
func viaReceived(data []byte, src netip.Addr) []byte {
	head, _, ok := bytes.Cut(data, []byte("\r\n\r\n"))
	if !ok || !src.IsValid() {
		return nil
	}
	ip := []byte(src.Unmap().String())
	start := bytes.Index(head, []byte("\r\n")) + 2
	for start > 1 && start < len(head) {
		end := bytes.Index(head[start:], []byte("\r\n"))
		if end < 0 {
			end = len(head) - start
		}
		line := head[start : start+end]
		next := start + end + 2
		name, _, _ := bytes.Cut(line, []byte(":"))
		name = bytes.TrimSpace(name)
		if !bytes.EqualFold(name, []byte("via")) && !bytes.EqualFold(name, []byte("v")) {
			start = next
			continue
		}
		if next < len(head) && (head[next] == ' ' || head[next] == '\t') {
			return nil // folded: left to the close grace (listen_frame.go)
		}
		// The first value of the line: up to a comma.
		val := line
		if c := bytes.IndexByte(line, ','); c >= 0 {
			val = line[:c]
		}
		parts := bytes.Split(val, []byte(";"))
		kept := [][]byte{parts[0]}
		had := false
		for _, p := range parts[1:] {
			k, v, _ := bytes.Cut(p, []byte("="))
			k = bytes.TrimSpace(k)
			switch {
			case bytes.EqualFold(k, []byte("received")):
				if bytes.Equal(bytes.TrimSpace(v), ip) {
					had = true
					kept = append(kept, p)
				}
				continue
			case bytes.EqualFold(k, []byte("rport")) && len(bytes.TrimSpace(v)) > 0:
				continue
			}
			kept = append(kept, p)
		}
		if len(kept) == len(parts) && (had || sentByHost(parts[0]) == string(ip)) {
			return nil // nothing to drop, and the source is named already
		}
		if !had {
			kept = append(kept, append([]byte("received="), ip...))
		}
		out := make([]byte, 0, len(data)+len(ip)+16)
		out = append(out, data[:start]...)
		out = append(out, bytes.Join(kept, []byte(";"))...)
		out = append(out, line[len(val):]...)
		return append(out, data[start+end:]...)
	}
	return nil
}

// sentByHost is the host of "SIP/2.0/TCP host[:port]", without brackets.
func sentByHost(v []byte) string {
	v = bytes.TrimSpace(v)
	if i := bytes.LastIndexAny(v, " \t"); i >= 0 {
		v = v[i+1:]
	}
	if ap, err := netip.ParseAddrPort(string(v)); err == nil {
		return ap.Addr().String()
	}
	return string(bytes.Trim(v, "[]"))
}
