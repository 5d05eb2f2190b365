// Package sip is the B2BUA: it answers calls to IM users
// (sip:<im-id>@<domain>), routes them through the registry and the SCP to
// the user's active terminal, and bridges the caller's dialog with new
// dialogs towards the terminals. It also takes SIP registrations of smart
// terminals and authenticates callers with digest.
//
// # Sessions of legs
//
// A call is a session that owns a set of legs:
//
//	session (session.go): one loop, one bridge policy, one record
//	 │   tasks ──▶ run(): the only goroutine that reads or writes the
//	 │             session or its legs; sipgo's handlers, timers and
//	 │             transactions post closures to it
//	 ├─ uasLeg "uas-1" (uas.go)  the INVITE that reached us: its dialog,
//	 │                            server transaction, 2xx kept until ACK
//	 ├─ uacLeg "uac-1" (uac.go)  an INVITE we placed: dialog, client
//	 ├─ uacLeg "uac-2"            transaction, CANCEL, ACK of its 2xx
//	 └─ …
//	 each leg: dialogState (dialog.go), context.WithCancelCause whose cause
//	 is its end reason, its own LegID towards the media anchor
//
// The bridge policy (policy.go) says what a leg's fate does to the rest:
// twoParty, the policy of an ordinary call, rings every routed target at once, lets
// the first 2xx win and CANCELs the others, and ends the session on either
// side's BYE. peer says who is bridged with whom; an in-dialog request on a
// leg is relayed to its peer (relay.go), with SDP rewritten by the media
// anchor and a delayed offer answered in the ACK (offeranswer.go).
//
// Each leg negotiates its own extensions with its peer: reliable
// provisionals, sent to a caller that offered 100rel and PRACKed towards a
// terminal that sends them (prack.go, RFC 3262), and session timers with
// their refreshes, refresher and expiry per leg, and the call duration
// limit (sessiontimer.go, RFC 4028), on an injectable Clock.
//
// Dual-path calls (dualpath.go, join.go, pathmedia.go): a device that
// reaches us over a trunk (carrier path) and digest-authenticated (data
// path), or names its first dialog in a Join header (RFC 3911), gets one
// session with two near legs and one far leg. correlate decides the join
// as a plain function over views the sessions publish; dualPath, the
// policy of such a session, ends it when the last near leg or the far leg
// ends. The far party hears one near leg (PathSelector.Select), switched
// when it falls silent; it reaches every near leg.
//
// # Media per leg
//
// The media anchor sees legs, never "the other side" (media.go):
//
//	Offer(from, to LegID, sdp)   an offer from one leg, for another
//	Answer(from, to LegID, sdp)  the answer; from and to now hear each other
//	Release(leg)                 a branch that lost, a path that ended
//
//	         uas-1 ◀──────────────▶ uac-1   (answered: media table entry)
//	                      ╳         uac-2   (lost: Release)
//
// Supervision (MediaSupervisor) and counters (MediaStatser) are optional
// interfaces found by type assertion; media_rtpproxy.go adapts the rtpproxy
// relay to this seam: every leg has its own endpoints there, and the
// relay's forwarding table (who hears whom, fan-out, source select, sinks)
// follows the answers.
//
// # Wire order
//
// sipgo delivers every message on a goroutine of its own, so responses to
// the INVITEs we place are taken from the transport in wire order (onWire,
// dispatch.go): a 180 that arrives before a 200 is relayed before it.
// Listening and shutdown are in listen.go, the Server and its helpers in
// server.go.
package sip
