package sip

import "bytes"

// checkAddrHeader checks the angle brackets of a From, To or Contact
// header line (full or compact name): a name-addr has exactly one '<',
// then one '>', and after it only parameters (RFC 3261 §20.10, §25.1
// name-addr). sipgo's parser drops some such lines without a word and
// takes others with the junk ignored; either way the sender learns nothing,
// and PROTOS c07 expects a 400. Quoted display names may hold brackets.
// In these and in Via, an empty parameter (";;", ";," or a ';' that ends
// the line) is refused too (RFC 4475 §3.1.2.1). The scan allocates
// nothing; other header lines pass.
func checkAddrHeader(h []byte) error {
	colon := bytes.IndexByte(h, ':')
	if colon <= 0 {
		return nil
	}
	name := bytes.TrimRight(h[:colon], " \t")
	switch {
	case len(name) == 1 && (name[0]|0x20 == 'f' || name[0]|0x20 == 't' || name[0]|0x20 == 'm' || name[0]|0x20 == 'v'):
	case bytes.EqualFold(name, []byte("from")), bytes.EqualFold(name, []byte("to")), bytes.EqualFold(name, []byte("contact")), bytes.EqualFold(name, []byte("via")):
	default:
		return nil
	}
	semi := false // a ';' with nothing after it yet
	lt, gt := 0, 0
	quoted, escaped := false, false
	for _, c := range h[colon+1:] {
		if semi && !quoted && c != ' ' && c != '\t' {
			if c == ';' || c == ',' {
				return errEmptyParam
			}
			semi = false
		}
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			if lt > gt {
				return errAddr // '<' inside <...>
			}
			lt++
		case c == '>':
			gt++
			if gt > lt {
				return errAddr // '>' without its '<'
			}
		case c == ';' && lt == gt:
			semi = true
		case c == ',' && lt == gt:
			// Contact lists several addresses.
		}
	}
	if quoted || lt != gt {
		return errAddr
	}
	if semi {
		return errEmptyParam
	}
	return nil
}
