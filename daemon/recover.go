package daemon

import (
	"context"
	"fmt"
	"os"

	"github.com/imcall/b2bua/sip"
)

// nodeID is the name of this node in the store's dialog snapshots: the
// configured one, else the host name. It must stay the same across
// restarts (a restarted node ends the calls its previous life held) and
// differ between nodes sharing a store, which host names do; nodes sharing
// a host need NodeID.
func nodeID(configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "", fmt.Errorf("node id: no host name (%v): set the node ID", err)
	}
	return h, nil
}

// dialogStore is the store's dialog snapshots, nil when the backend keeps
// none.
func dialogStore(store any) sip.DialogStore {
	ds, _ := store.(sip.DialogStore)
	return ds
}

// endLeftovers ends, in the background, the calls the node's previous life
// left in the store (sip.Server.EndLeftovers); Close stops and waits for it.
func (d *Daemon) endLeftovers() {
	ctx, stop := context.WithCancel(context.Background())
	d.stopRecover, d.recoverDone = stop, make(chan struct{})
	go func() {
		defer close(d.recoverDone)
		n, err := d.sip.EndLeftovers(ctx)
		if err != nil {
			d.log.Warn("calls left from before the restart not all ended", "ended", n, "err", err)
			return
		}
		if n > 0 {
			d.log.Info("calls left from before the restart ended", "calls", n)
		}
	}()
}

// waitLeftovers stops endLeftovers and waits for it.
func (d *Daemon) waitLeftovers() {
	if d.stopRecover != nil {
		d.stopRecover()
		<-d.recoverDone
	}
}
