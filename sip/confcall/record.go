package confcall

import (
	"context"
	"encoding/json"
	"time"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/sip"
)

// Records keeps the call records (registry.SignalStore has it).
type Records interface {
	StartCall(ctx context.Context, r registry.CallRecord) (int64, error)
}

// record is what a member's call record says beyond its end.
type record struct {
	callID, caller, callee string
	terminalID             int64
	scp                    string
	started, answered      time.Time
}

// writeRecord writes the ended member's call record, once, on a goroutine
// the Service owns: the conference's URI is the callee of a dial-in and
// the caller of a dial-out, so the record says which conference the leg
// belonged to.
func (s *Service) writeRecord(m *member, why conference.Ending, stats []byte) {
	if s.cfg.Records == nil {
		return
	}
	m.mu.Lock()
	r := m.rec
	m.mu.Unlock()
	if r.callID == "" {
		return // never got as far as a call
	}
	cause := string(why.Method)
	if why.Reason != "" {
		cause += ": " + why.Reason
	}
	rec := registry.CallRecord{
		CallID: r.callID, Caller: r.caller, Callee: r.callee, TerminalID: r.terminalID, SCPOutcome: r.scp,
		StartedAt: r.started, AnsweredAt: r.answered, EndedAt: time.Now().UTC(),
		EndCause: "conference " + sip.ConferencePrefix + m.confID + " " + cause, Q850Cause: why.Q850, Stats: string(stats),
	}
	if why.SIPCode >= 300 {
		rec.SIPStatus = why.SIPCode
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := s.cfg.Records.StartCall(ctx, rec); err != nil {
			s.log.Warn("confcall: call record", "conference", m.confID, "participant", m.pid, "err", err)
		}
	}()
}

// legStats is the member's media counters as the call records keep them.
func legStats(m *member) []byte {
	m.mu.Lock()
	call := m.call
	m.mu.Unlock()
	if call == nil {
		return nil
	}
	var out []map[string]any
	for _, st := range call.Stats() {
		if st.Leg != memberLeg {
			continue // the bridge's leg stands in for the mixer and sends nothing
		}
		out = append(out, map[string]any{"leg": "member", "stream": st.Stream, "media": st.Media,
			"packets": st.Packets, "bytes": st.Bytes, "lost": st.Lost, "jitter_ms": st.JitterMs})
	}
	b, _ := json.Marshal(out)
	return b
}
