package daemon

import (
	"github.com/imcall/b2bua/sip"
	"github.com/imcall/b2bua/siptrace"
)

// tracers hands each SIP message to every tracer in turn.
type tracers []sip.Tracer

func (ts tracers) TraceSIP(m sip.WireMessage) {
	for _, t := range ts {
		t.TraceSIP(m)
	}
}

// openTracers opens the SIP capture cfg asks for (HEP, pcap) beside the
// metrics' count of the answers sent. The writers are closed after SIP
// stops (closeResources).
func (d *Daemon) openTracers(cfg Config) (sip.Tracer, error) {
	ts := tracers{d.metrics}
	if cfg.HEP != "" {
		h, err := siptrace.DialHEP(siptrace.HEPConfig{Target: cfg.HEP, CaptureID: cfg.HEPCaptureID, Logger: d.log.With("component", "hep")})
		if err != nil {
			return nil, err
		}
		d.traces = append(d.traces, h)
		ts = append(ts, h)
	}
	if cfg.SIPPcap != "" {
		p, err := siptrace.CreatePcap(cfg.SIPPcap, d.log.With("component", "sip-pcap"))
		if err != nil {
			return nil, err
		}
		d.traces = append(d.traces, p)
		ts = append(ts, p)
	}
	return ts, nil
}
