package sip

import (
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"
)

// dialogState is one dialog as the B2BUA sees it (RFC 3261 §12): the
// identifiers and route set needed to send in-dialog requests on it. It is
// owned by its leg, and so by the session's event loop; nothing else reads
// or writes it.
type dialogState struct {
	callID    string
	local     sipmsg.Uri // our URI on this dialog (From of our requests)
	localName string
	localTag  string
	remote    sipmsg.Uri // the peer's URI (To of our requests)
	remoteNm  string
	remoteTag string
	localSeq  uint32
	remoteSeq uint32
	target    sipmsg.Uri // remote target: the peer's Contact (§12.1)
	routeSet  []string   // Route values, in the order they are sent
	dest      string     // where requests go when the route set is empty
	transport string
	laddr     sipmsg.Addr // our socket for UDP, so requests leave from the listen port
}

// dialogID identifies the dialog for matching requests the peer sends on
// it: Call-ID and our tag (the To tag of the peer's requests).
func (l *dialogState) dialogID() dialogID { return dialogID{l.callID, l.localTag} }

// key is dialogID as one string, the key of the dialog's snapshot.
func (l *dialogState) key() string { return l.callID + "\x00" + l.localTag }

// newRequest builds an in-dialog request on this leg (RFC 3261 §12.2.1.1).
// A CSeq of 0 takes the next local sequence number.
func (l *dialogState) newRequest(method sipmsg.RequestMethod, seq uint32) *sipmsg.Request {
	req := sipmsg.NewRequest(method, *l.target.Clone())
	from := &sipmsg.FromHeader{DisplayName: l.localName, Address: l.local, Params: sipmsg.NewParams()}
	from.Params.Add("tag", l.localTag)
	to := &sipmsg.ToHeader{DisplayName: l.remoteNm, Address: l.remote, Params: sipmsg.NewParams()}
	if l.remoteTag != "" {
		to.Params.Add("tag", l.remoteTag)
	}
	callID := sipmsg.CallIDHeader(l.callID)
	if seq == 0 {
		l.localSeq++
		seq = l.localSeq
	}
	mf := sipmsg.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: seq, MethodName: method})
	req.AppendHeader(&mf)
	for _, r := range l.routeSet {
		req.AppendHeader(sipmsg.NewHeader("Route", r))
	}
	req.SetTransport(l.transport)
	if len(l.routeSet) > 0 {
		var ru sipmsg.Uri
		if err := sipmsg.ParseUri(strings.Trim(strings.SplitN(l.routeSet[0], ",", 2)[0], " <>"), &ru); err == nil {
			if ru.Port == 0 {
				ru.Port = 5060
			}
			req.SetDestination(ru.HostPort())
		}
	} else if l.dest != "" {
		req.SetDestination(l.dest)
	}
	if l.laddr.IP != nil {
		req.Laddr = l.laddr
	}
	return req
}

// updateTarget applies a target refresh: a Contact in a 2xx or in a
// re-INVITE replaces the remote target (RFC 3261 §12.2.1.2, §12.2.2).
func (l *dialogState) updateTarget(c *sipmsg.ContactHeader) {
	if c != nil {
		l.target = *c.Address.Clone()
	}
}
