package sip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/registry"
)

// RestartCause is the end cause of the call records of calls ended by
// EndLeftovers, and the text of their BYEs' Reason.
const RestartCause = "node restarted"

// leftoverSeqStep is how far past the kept CSeq a leftover BYE goes: the
// snapshot is taken when the call is answered, and in-dialog requests sent
// after it (a relayed re-INVITE, INFO) raised the leg's CSeq unseen. A UAS
// accepts any higher CSeq (RFC 3261 §12.2.2), but rejects a lower one with
// 500, which would leave the dialog up.
const leftoverSeqStep = 1000

// maxLeftoverCalls bounds the leftover calls ended at once, so that a node
// that held thousands of calls does not open thousands of transactions in
// the same instant.
const maxLeftoverCalls = 64

// EndLeftovers ends every call this node held in its previous life, as its
// dialog snapshots tell (Config.Dialogs, Config.Node): BYE on each leg (a
// CANCEL on a leg still ringing) with Reason Q.850 cause 41 "node
// restarted" (RFC 3326 allows it in both), then the call's record is closed
// and its snapshot deleted. A BYE that gets no answer before ctx is done
// (or Timer F) does not keep the record open: the calls are over either
// way, their media went with the process. Call it once the server is
// Ready; it returns the number of calls ended.
func (s *Server) EndLeftovers(ctx context.Context) (int, error) {
	if s.cfg.Dialogs == nil {
		return 0, nil
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	list, err := s.cfg.Dialogs.Dialogs(ctx, s.cfg.Node)
	if err != nil {
		return 0, fmt.Errorf("sip: leftover calls: %w", err)
	}
	if len(list) == 0 {
		return 0, nil
	}
	s.log.Info("ending calls left from before the restart", "calls", len(list), "node", s.cfg.Node)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, maxLeftoverCalls)
	)
	for _, d := range list {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.endLeftover(ctx, d); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(list) - len(errs), errors.Join(errs...)
}

// endLeftover sends BYE (or CANCEL) on every leg of d, waits for the
// answers, and closes d's record.
func (s *Server) endLeftover(ctx context.Context, d registry.DialogSnapshot) error {
	bctx, cancel := context.WithTimeout(ctx, s.cfg.TxTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range d.Legs {
		if l.Answer != nil {
			s.answerLeftover(bctx, d, l)
			continue
		}
		dlg, err := dialogOf(l)
		if err != nil {
			s.log.Warn("leftover call: leg unusable", "call", d.CallID, "err", err)
			continue
		}
		dlg.laddr = s.laddr(dlg.transport)
		var req *sipmsg.Request
		if l.Invite == nil {
			req = dlg.newRequest(sipmsg.BYE, l.LocalSeq+leftoverSeqStep)
		} else {
			// Still ringing: RFC 3261 §9.1 CANCELs the INVITE; the UAS
			// answers it 200 and the INVITE 487 (§9.2). Had it answered
			// 2xx meanwhile, that 2xx finds no transaction here, and the
			// UAS ends the dialog it never saw ACKed (§13.3.1.4).
			if req, err = cancelOf(l); err != nil {
				s.log.Warn("leftover call: leg unusable", "call", d.CallID, "err", err)
				continue
			}
			req.Laddr = dlg.laddr
		}
		req.AppendHeader(sipmsg.NewHeader("Reason", reasonValue(CauseTemporaryFailure, RestartCause)))
		wg.Add(1)
		s.request(bctx, req, nil, func(res *sipmsg.Response, err error) {
			defer wg.Done()
			if err != nil {
				s.log.Info("leftover call: request unanswered", "method", req.Method, "call", l.CallID, "err", err)
				return
			}
			s.log.Debug("leftover call: request answered", "method", req.Method, "call", l.CallID, "status", res.StatusCode)
		})
	}
	wg.Wait()
	// The record is closed even when the server is stopping: the
	// BYEs are out, and a second restart would only send them again.
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := s.cfg.Dialogs.EndLeftover(wctx, d, time.Now().UTC(), RestartCause); err != nil {
		return fmt.Errorf("sip: leftover call %s: %w", d.CallID, err)
	}
	return nil
}

// answerLeftover sends a caller whose INVITE rang when the node died the
// final answer its transaction still waits for, statelessly (RFC 3261
// §8.2.7): 503 with Reason cause 41 "node restarted" (a temporary
// failure, which RFC 3398 §8.2.6.1 maps to 503). It goes where §18.2.2
// sends a response: over UDP to the INVITE's source; over TCP or TLS on a
// new connection to the source address at the top Via's sent-by port. A
// caller whose transaction timed out meanwhile (Timer B) discards it.
func (s *Server) answerLeftover(ctx context.Context, d registry.DialogSnapshot, l registry.DialogLeg) {
	res, err := answerTo(l, 503)
	if err != nil {
		s.log.Warn("leftover call: leg unusable", "call", d.CallID, "err", err)
		return
	}
	res.AppendHeader(sipmsg.NewHeader("Reason", reasonValue(CauseTemporaryFailure, RestartCause)))
	res.AppendHeader(sipmsg.NewHeader("Server", s.cfg.UserAgent))
	src, err := netip.ParseAddrPort(l.Answer.Source)
	if err != nil {
		s.log.Warn("leftover call: caller's address unusable", "call", d.CallID, "source", l.Answer.Source)
		return
	}
	wire := []byte(res.String())
	if strings.EqualFold(l.Transport, "UDP") {
		// From the socket requests leave from, the one the caller sent to.
		err := errors.New("no UDP socket")
		laddr := s.laddr("UDP")
		if c, _ := s.ua.TransportLayer().GetConnection("udp", laddr.String()); c != nil {
			defer c.TryClose()
			if u, ok := c.(*sipmsg.UDPConnection); ok {
				_, err = u.WriteTo(wire, net.UDPAddrFromAddrPort(src))
			}
		}
		if err != nil {
			s.log.Info("leftover call: answer to the caller not sent", "call", d.CallID, "err", err)
		}
		return
	}
	port := res.Via().Port
	if port <= 0 || port > 65535 {
		port = sipmsg.DefaultPort(l.Transport)
	}
	dst := netip.AddrPortFrom(src.Addr().Unmap(), uint16(port))
	conn, err := s.redial(ctx, strings.ToLower(l.Transport), dst)
	if err != nil {
		s.log.Info("leftover call: answer to the caller not sent", "call", d.CallID, "to", dst.String(), "err", err)
		return
	}
	defer conn.TryClose()
	if w, ok := conn.(io.Writer); ok {
		_, err = w.Write(wire)
	} else {
		err = conn.WriteMsg(res)
	}
	if err != nil {
		s.log.Info("leftover call: answer to the caller not sent", "call", d.CallID, "to", dst.String(), "err", err)
	}
}
