package daemon

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/imcall/b2bua/rtpproxy"
	"github.com/imcall/b2bua/sip"
)

// startMedia builds the call media path of cfg.Media: the RTP proxy
// (anchor, the default) or passthrough.
func (d *Daemon) startMedia(cfg Config) (sip.MediaAnchor, error) {
	switch cfg.Media {
	case MediaPassthrough:
		return sip.Passthrough{}, nil
	case MediaAnchor:
	default:
		return nil, fmt.Errorf("media: %q: must be %s or %s", cfg.Media, MediaAnchor, MediaPassthrough)
	}
	bind := cfg.RTPBind
	if !bind.IsValid() {
		var err error
		if bind, err = sipHost(cfg.SIPListen); err != nil {
			return nil, err
		}
	}
	p, err := rtpproxy.New(rtpproxy.Config{
		BindAddr:      bind,
		AdvertiseAddr: cfg.RTPAdvertise,
		BindV6:        cfg.RTPBindV6,
		AdvertiseV6:   cfg.RTPAdvertiseV6,
		PortMin:       cfg.RTPPortMin,
		PortMax:       cfg.RTPPortMax,
		MediaTimeout:  cfg.MediaTimeout,
		Kernel:        cfg.RTPKernel,
		Logger:        d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	if k := p.Kernel(); k.Active {
		d.log.Info("RTP of latched two-party calls is forwarded in the kernel")
	} else if cfg.RTPKernel != rtpproxy.KernelOff {
		d.log.Warn("RTP is relayed in userspace: in-kernel forwarding unavailable", "reason", k.Reason)
	}
	d.rtp = p
	return sip.RTPProxy{Proxy: p}, nil
}

// sipHost is the RTP proxy's default bind address: the host of the SIP
// listen address, so media and signalling share an interface.
func sipHost(listen string) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("media: SIP listen address %q: %w", listen, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Unmap().Is4() {
		return netip.Addr{}, fmt.Errorf("media: SIP listen host %q is not an IPv4 address; set the RTP bind address", host)
	}
	return a.Unmap(), nil
}
