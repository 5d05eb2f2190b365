package mixer

// ParticipantState is a snapshot of one participant, for the conference state
// shown to clients.
type ParticipantState struct {
	ID      string
	Law     Law
	Muted   bool
	Talking bool
	Stats   LegStats
}

// LegStats counts what happened to a participant's packets.
type LegStats struct {
	Received    uint64 // audio frames accepted into the jitter buffer
	Late        uint64 // frames that arrived after their playout time, dropped
	Lost        uint64 // ticks with no frame to play once playout had begun
	Duplicates  uint64
	Resyncs     uint64 // playout restarts: a jump beyond the jitter window
	Events      uint64 // telephone-event packets (RFC 4733), never mixed
	Ignored     uint64 // packets of another payload type or frame size, or not RTP
	WriteErrors uint64 // packets the participant's Output refused
}

// State returns every participant in the order they joined.
func (m *Mixer) State() []ParticipantState {
	set := m.legs.Load()
	out := make([]ParticipantState, 0, len(set.list))
	for _, l := range set.list {
		l.mu.Lock()
		st := LegStats{
			Received:   l.jb.received,
			Late:       l.jb.late,
			Lost:       l.jb.lost,
			Duplicates: l.jb.dups,
			Resyncs:    l.jb.resyncs,
			Events:     l.events,
			Ignored:    l.ignored,
		}
		l.mu.Unlock()
		st.WriteErrors = l.writeErrs.Load()
		out = append(out, ParticipantState{
			ID:      l.id,
			Law:     l.law,
			Muted:   l.muted.Load(),
			Talking: l.talking.Load(),
			Stats:   st,
		})
	}
	return out
}
