package sip

import "time"

// pathRecord is one near leg of a dual-path session in the call record.
type pathRecord struct {
	Leg      LegID     `json:"leg"`
	Path     string    `json:"path"` // "data" or "carrier"
	JoinedAt time.Time `json:"joined_at"`
	LeftAt   time.Time `json:"left_at,omitzero"`
	Reason   string    `json:"end_reason,omitempty"`
}

// dualRecord is the call record's Stats of a session that had two near
// legs: the media counters as for any call, the paths, and the far
// party's source switches with the silence of the path each one left.
type dualRecord struct {
	Media    any          `json:"media"`
	Paths    []pathRecord `json:"paths"`
	Switches int          `json:"switches"`
	GapsMs   []int64      `json:"switch_gaps_ms,omitempty"`
}

// recordStats is what the call record's Stats holds: the media counters,
// inside a dualRecord for a session that had a second path.
func (c *session) recordStats(media any) any {
	if c.dual == nil || len(c.uas) < 2 {
		return media
	}
	r := dualRecord{Media: media, Switches: c.dual.paths.switches}
	for _, g := range c.dual.paths.gaps {
		r.GapsMs = append(r.GapsMs, g.Milliseconds())
	}
	for _, u := range c.uas {
		p := pathRecord{Leg: u.id, Path: c.dual.dev[u].Path.String(), JoinedAt: c.dual.joined[u].UTC(), Reason: u.endReason()}
		if t, ok := c.dual.left[u]; ok {
			p.LeftAt = t.UTC()
		} else {
			p.LeftAt = c.now().UTC()
		}
		r.Paths = append(r.Paths, p)
	}
	return r
}
