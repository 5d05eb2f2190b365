package main

import (
	"github.com/spf13/pflag"

	"github.com/imcall/b2bua/daemon"
)

// opsOptions are the flags of SIP capture and readiness.
type opsOptions struct {
	hep          string
	hepCaptureID uint32
	sipPcap      string
	optionsOK    bool
}

func (o *opsOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.hep, "hep", envOr("B2BUA_HEP", ""), "send a HEP v3 copy of every SIP message sent and received to this collector, udp:HOST:PORT (Homer, heplify-server) (env B2BUA_HEP)")
	f.Uint32Var(&o.hepCaptureID, "hep-capture-id", 2001, "capture ID naming this node in HEP packets")
	f.StringVar(&o.sipPcap, "sip-pcap", envOr("B2BUA_SIP_PCAP", ""), "write every SIP message sent and received to this pcap file (Wireshark, sngrep) (env B2BUA_SIP_PCAP)")
	f.BoolVar(&o.optionsOK, "options-always-ok", false, "answer out-of-dialog OPTIONS 200 even when not ready (default: 503 while /readyz fails, so a dispatcher in front fails over)")
}

// apply sets o's part of cfg.
func (o *opsOptions) apply(cfg *daemon.Config) {
	cfg.HEP, cfg.HEPCaptureID, cfg.SIPPcap = o.hep, o.hepCaptureID, o.sipPcap
	cfg.OptionsAlwaysOK = o.optionsOK
}
