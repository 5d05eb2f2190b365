package conference

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ContentType is the MIME type of conference-info documents (RFC 4575
// section 3.3), the body of a NOTIFY for Event: conference.
const ContentType = "application/conference-info+xml"

// Namespaces of the documents.
const (
	InfoNS = "urn:ietf:params:xml:ns:conference-info"
	// TalkingNS is this product's namespace for the talking indication.
	// RFC 4575 has no element for "this participant is speaking now"; the
	// schema admits elements of other namespaces in <media> (xs:any
	// ##other, processContents lax), so <t:talking> lives there.
	TalkingNS = "urn:x-imcall:params:xml:ns:conference-talking"
)

// Notifier turns a watcher's events into the conference-info documents of
// one subscription: a full document first (and after a resync), then
// partial ones carrying only what changed. The version attribute counts
// the documents of this subscription (RFC 4575 section 5.1: incremented by
// one for each document sent to a subscriber), so a subscriber that sees a
// gap knows to refresh. A Notifier belongs to one subscription and is not
// safe for concurrent use.
type Notifier struct {
	version uint32
	targets map[string]string // participant ID -> target, to name a removed endpoint
}

// Document renders the next document for ev.
func (n *Notifier) Document(ev Event) ([]byte, error) {
	n.version++
	doc := info{XMLNS: InfoNS, XMLNST: TalkingNS, Entity: ev.State.URI, Version: n.version}
	domain := ev.State.URI[strings.LastIndexByte(ev.State.URI, '@')+1:]
	full := ev.Full || n.targets == nil
	live := 0
	for _, p := range ev.State.Participants {
		if p.Status.Live() {
			live++
		}
	}
	doc.ConfState = &confState{UserCount: live, Active: !ev.State.Ended, Locked: false}
	if full {
		doc.State = "full"
		doc.Desc = &confDesc{
			Display:  "Conference of " + ev.State.Owner,
			ConfURIs: &uris{Entries: []uriEntry{{URI: ev.State.URI, Purpose: "participation"}}},
			Media:    &confMedia{Entries: []confMedium{{Label: "audio", Type: "audio", Status: "sendrecv"}}},
		}
		n.targets = map[string]string{}
		doc.Users = &users{State: "full"}
		order, byTarget := group(ev.State.Participants)
		for _, t := range order {
			u := user{Entity: targetURI(t, domain), State: "full"}
			for _, p := range byTarget[t] {
				if u.Display == "" {
					u.Display = p.Display
				}
				u.Endpoints = append(u.Endpoints, endpointOf(p, domain, "full"))
				n.targets[p.ID] = p.Target
			}
			doc.Users.Users = append(doc.Users.Users, u)
		}
	} else {
		doc.State = "partial"
		doc.Users = &users{State: "partial"}
		add := func(target string, ep endpoint) {
			entity := targetURI(target, domain)
			for i := range doc.Users.Users {
				if doc.Users.Users[i].Entity == entity {
					doc.Users.Users[i].Endpoints = append(doc.Users.Users[i].Endpoints, ep)
					return
				}
			}
			doc.Users.Users = append(doc.Users.Users, user{Entity: entity, State: "partial", Endpoints: []endpoint{ep}})
		}
		for _, id := range ev.Changed {
			if p, ok := ev.State.Participant(id); ok {
				n.targets[p.ID] = p.Target
				add(p.Target, endpointOf(p, domain, "full"))
			}
		}
		for _, id := range ev.Removed {
			target, ok := n.targets[id]
			if !ok {
				continue
			}
			delete(n.targets, id)
			if !slices.ContainsFunc(ev.State.Participants, func(p Participant) bool { return p.Target == target }) {
				// The user's last endpoint is gone: the user leaves the roster
				// (RFC 4575 section 4.6.2, state="deleted").
				doc.Users.Users = append(doc.Users.Users, user{Entity: targetURI(target, domain), State: "deleted"})
				continue
			}
			add(target, endpoint{Entity: endpointEntity(target, id, domain), State: "deleted"})
		}
		if len(doc.Users.Users) == 0 {
			doc.Users = nil
		}
	}
	// Not indented: a NOTIFY over UDP must stay under 1300 bytes or move
	// to TCP (RFC 3261 §18.1.1), and indentation is a third of a document.
	out, err := xml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("conference-info: %w", err)
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

// group orders targets by first appearance: one RFC 4575 user per target,
// one endpoint per time it was called.
func group(ps []Participant) ([]string, map[string][]Participant) {
	var order []string
	m := map[string][]Participant{}
	for _, p := range ps {
		if _, ok := m[p.Target]; !ok {
			order = append(order, p.Target)
		}
		m[p.Target] = append(m[p.Target], p)
	}
	return order, m
}

// targetURI is a participant's user URI: a phone number as a tel URI
// (RFC 3966), an IM ID as its SIP address.
func targetURI(target, domain string) string {
	if strings.HasPrefix(target, "+") {
		return "tel:" + target
	}
	return "sip:" + target + "@" + domain
}

// endpointEntity names one call of a user: the user's URI with the
// participant ID as a parameter (a uri-parameter of RFC 3261 section 25.1,
// a parameter of RFC 3966 section 3 for tel), unique within the conference.
func endpointEntity(target, pid, domain string) string {
	return targetURI(target, domain) + ";participant=" + pid
}

// endpointStatus maps a participant to RFC 4575 section 5.7.2's statuses:
// dialing is dialing-out or dialing-in by who called whom; a muted live
// participant is muted-via-focus (its media is not mixed, it still hears).
func endpointStatus(p Participant) string {
	switch p.Status {
	case StatusPending:
		return "pending"
	case StatusDialing:
		if p.Joined == DialedIn {
			return "dialing-in"
		}
		return "dialing-out"
	case StatusRinging:
		return "alerting"
	case StatusOnHold:
		return "on-hold"
	case StatusConnected:
		if p.Muted {
			return "muted-via-focus"
		}
		return "connected"
	}
	return "disconnected"
}

func endpointOf(p Participant, domain, state string) endpoint {
	ep := endpoint{
		Entity: endpointEntity(p.Target, p.ID, domain), State: state,
		Display: p.Display, Status: endpointStatus(p), Joining: string(p.Joined),
		JoinInfo: &execution{When: p.Added.UTC().Format(time.RFC3339)},
	}
	if e := p.Ended; e != nil {
		ep.Disconnect = string(e.Method)
		ep.DisconnectInfo = &execution{When: e.At.UTC().Format(time.RFC3339), Reason: endingReason(*e)}
	}
	if p.Status == StatusConnected || p.Status == StatusOnHold {
		// The media status is the stream as the participant has it (RFC
		// 4575 section 5.7.9.5, SDP directions): muted, it only receives.
		m := media{ID: "audio", Type: "audio", Status: "sendrecv", Talking: &talking{Value: p.Talking}}
		switch {
		case p.Status == StatusOnHold:
			m.Status = "inactive"
		case p.Muted:
			m.Status = "recvonly"
		}
		ep.Media = []media{m}
	}
	return ep
}

// endingReason is disconnection-info's reason: the SIP answer and Q.850
// cause in the form of a Reason header (RFC 3326), then the words.
func endingReason(e Ending) string {
	var parts []string
	if e.SIPCode != 0 {
		parts = append(parts, fmt.Sprintf("SIP;cause=%d", e.SIPCode))
	}
	if e.Q850 != 0 {
		parts = append(parts, fmt.Sprintf("Q.850;cause=%d", e.Q850))
	}
	if e.Reason != "" {
		parts = append(parts, e.Reason)
	}
	return strings.Join(parts, "; ")
}

// The XML shapes, in the element order RFC 4575 section 5's schema fixes.
type info struct {
	XMLName   xml.Name   `xml:"conference-info"`
	XMLNS     string     `xml:"xmlns,attr"`
	XMLNST    string     `xml:"xmlns:t,attr"`
	Entity    string     `xml:"entity,attr"`
	State     string     `xml:"state,attr"`
	Version   uint32     `xml:"version,attr"`
	Desc      *confDesc  `xml:"conference-description"`
	ConfState *confState `xml:"conference-state"`
	Users     *users     `xml:"users"`
}

type confDesc struct {
	Display  string     `xml:"display-text,omitempty"`
	ConfURIs *uris      `xml:"conf-uris"`
	Media    *confMedia `xml:"available-media"`
}

type uris struct {
	Entries []uriEntry `xml:"entry"`
}

type uriEntry struct {
	URI     string `xml:"uri"`
	Purpose string `xml:"purpose,omitempty"`
}

type confMedia struct {
	Entries []confMedium `xml:"entry"`
}

type confMedium struct {
	Label  string `xml:"label,attr"`
	Type   string `xml:"type"`
	Status string `xml:"status,omitempty"`
}

type confState struct {
	UserCount int  `xml:"user-count"`
	Active    bool `xml:"active"`
	Locked    bool `xml:"locked"`
}

type users struct {
	State string `xml:"state,attr"`
	Users []user `xml:"user"`
}

type user struct {
	Entity    string     `xml:"entity,attr"`
	State     string     `xml:"state,attr"`
	Display   string     `xml:"display-text,omitempty"`
	Endpoints []endpoint `xml:"endpoint"`
}

type endpoint struct {
	Entity         string     `xml:"entity,attr"`
	State          string     `xml:"state,attr"`
	Display        string     `xml:"display-text,omitempty"`
	Status         string     `xml:"status,omitempty"`
	Joining        string     `xml:"joining-method,omitempty"`
	JoinInfo       *execution `xml:"joining-info"`
	Disconnect     string     `xml:"disconnection-method,omitempty"`
	DisconnectInfo *execution `xml:"disconnection-info"`
	Media          []media    `xml:"media"`
}

type execution struct {
	When   string `xml:"when,omitempty"`
	Reason string `xml:"reason,omitempty"`
}

type media struct {
	ID      string   `xml:"id,attr"`
	Type    string   `xml:"type"`
	Status  string   `xml:"status"`
	Talking *talking `xml:"t:talking"`
}

type talking struct {
	Value bool `xml:",chardata"`
}
