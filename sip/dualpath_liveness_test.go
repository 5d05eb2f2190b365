package sip_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	b2b "github.com/imcall/b2bua/sip"
)

// pathEnds reads the end reason of each path of the one call record.
func pathEnds(t *testing.T, d *dualEnv) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	waitIdle(t, d.env)
	recs, err := d.store.Calls(ctx, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %v %v", recs, err)
	}
	var rec struct {
		Paths []struct {
			Path      string
			EndReason string `json:"end_reason"`
		}
	}
	if err := json.Unmarshal([]byte(recs[0].Stats), &rec); err != nil {
		t.Fatalf("stats %q: %v", recs[0].Stats, err)
	}
	var out []string
	for _, p := range rec.Paths {
		out = append(out, p.Path+": "+p.EndReason)
	}
	return out
}

// noRequest fails if the far party gets a request other than its INVITE
// within d.
func noRequest(t *testing.T, p *peer, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-p.requests:
			if r.Method != sipmsg.INVITE {
				t.Fatalf("far party got %s", r.Method)
			}
		case <-deadline:
			return
		}
	}
}

// TestDualPathProbeEndsDeadPath: we probe each answered path with an
// in-dialog OPTIONS; a path that stops answering them, or answers 481, is
// ended (a BYE with Reason cause 102 where its dialog may still be there)
// and the call goes on over the other, the far party none the wiser.
func TestDualPathProbeEndsDeadPath(t *testing.T) {
	cases := []struct {
		name    string
		status  int // the carrier path's answer to OPTIONS from some point; -1 none
		wantBye bool
		end     string // the carrier path's end in the record
	}{
		{"no answer", -1, true, "path probe failed: no answer to OPTIONS"},
		{"481", 481, false, "path probe failed: OPTIONS answered 481"},
		{"405 still lives", 405, false, "caller BYE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDualEnv(t, 0, func(c *b2b.DualPathConfig) {
				c.ProbeInterval, c.ProbeTimeout = 100*time.Millisecond, 300*time.Millisecond
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			data, carrier := newPeer(t, "alice"), newPeerAt(t, "carrier", "127.0.0.2")
			dataDlg, res, err := dial(ctx, d, data, newRTPSock(t, "127.0.0.1"), "alice")
			if err != nil {
				t.Fatalf("data path: %v (%v)", err, res)
			}
			<-d.dlgs
			carrierDlg, res, err := dial(ctx, d, carrier, newRTPSock(t, "127.0.0.1"), "", pai(aliceMSISDN))
			if err != nil {
				t.Fatalf("carrier path: %v (%v)", err, res)
			}
			// Each path is probed in its own dialog.
			for _, pd := range []struct {
				p   *peer
				cid string
			}{{data, dataDlg.InviteRequest.CallID().Value()}, {carrier, carrierDlg.InviteRequest.CallID().Value()}} {
				o := pd.p.waitRequest(sipmsg.OPTIONS, 3*time.Second)
				if tag, _ := o.To().Params.Get("tag"); tag == "" || o.CallID().Value() != pd.cid {
					t.Fatalf("%s probed outside its dialog: %s", pd.p.name, headersOnly(o))
				}
			}
			carrier.mu.Lock()
			carrier.optionsStatus = tc.status
			carrier.mu.Unlock()
			if tc.status == 405 {
				// Answered, if not liked: the path lives through probes.
				time.Sleep(600 * time.Millisecond)
				if n := d.srv.PathMetrics().TwoPaths; n != 1 {
					t.Fatalf("a path answering 405 to OPTIONS was ended (%d sessions with two paths)", n)
				}
				hangUp(ctx, carrierDlg)
			}
			waitFor(t, func() bool { return d.srv.PathMetrics().TwoPaths == 0 })
			if tc.wantBye {
				bye := carrier.waitRequest(sipmsg.BYE, 3*time.Second)
				if h := bye.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "cause=102") {
					t.Errorf("BYE of a dead path: Reason %v, want cause 102", h)
				}
			}
			noRequest(t, d.far, 150*time.Millisecond)
			hangUp(ctx, dataDlg)
			d.far.waitRequest(sipmsg.BYE, 5*time.Second)
			want := "carrier: " + tc.end
			if got := pathEnds(t, d); len(got) != 2 || got[1] != want {
				t.Errorf("paths %q, want the second %q", got, want)
			}
		})
	}
}

// TestDualPathFlowFailureEndsPath: the carrier path over TCP ends when its
// connection is reset, at once; the call goes on over the data path.
func TestDualPathFlowFailureEndsPath(t *testing.T) {
	d := newDualEnv(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data := newPeer(t, "alice")
	dataDlg, res, err := dial(ctx, d, data, newRTPSock(t, "127.0.0.1"), "alice")
	if err != nil {
		t.Fatalf("data path: %v (%v)", err, res)
	}
	<-d.dlgs
	cl := dialTCPFrom(t, "127.0.0.2", d.addr)
	rtp := newRTPSock(t, "127.0.0.1")
	ruri := d.uri("bob")
	call := cl.invite(ruri.String(), sdpFor(rtp.port()), "", "P-Asserted-Identity: <tel:"+aliceMSISDN+">")
	if call.res.StatusCode != 200 {
		t.Fatalf("carrier path over TCP: %v", call.res)
	}
	waitFor(t, func() bool { return d.srv.PathMetrics().TwoPaths == 1 })
	start := time.Now()
	_ = cl.conn.SetLinger(0)
	cl.conn.Close()
	waitFor(t, func() bool { return d.srv.PathMetrics().TwoPaths == 0 })
	if took := time.Since(start); took > time.Second {
		t.Errorf("path ended %v after its flow broke", took)
	}
	noRequest(t, d.far, 150*time.Millisecond)
	hangUp(ctx, dataDlg)
	d.far.waitRequest(sipmsg.BYE, 5*time.Second)
	if got := pathEnds(t, d); len(got) != 2 || got[1] != "carrier: path flow failed" {
		t.Errorf("paths %q, want the carrier's ended by its flow", got)
	}
}

// tcpDialog is a call the tcpClient placed.
type tcpDialog struct {
	cl           *tcpClient
	ruri, callID string
	tag, to      string // our From tag; the To header with the B2BUA's tag
	seq          int
	res          *sipmsg.Response // the INVITE's final response
}

// invite places a call over the flow with offer (none if empty) and ACKs
// its 2xx, with ackSDP as the answer when the 2xx carried the offer.
func (cl *tcpClient) invite(ruri, offer, ackSDP string, extra ...string) *tcpDialog {
	cl.t.Helper()
	d := &tcpDialog{cl: cl, ruri: ruri, callID: sipmsg.GenerateTagN(16), tag: sipmsg.GenerateTagN(6), to: "<" + ruri + ">"}
	d.res = d.request("INVITE", offer, ackSDP, extra...)
	if d.res.StatusCode < 300 {
		d.to = d.res.To().Value()
	}
	return d
}

// request sends method in the dialog (or the dialog's INVITE) and gives
// the final response; a 2xx to INVITE is ACKed, with ackSDP if set.
func (d *tcpDialog) request(method, body, ackSDP string, extra ...string) *sipmsg.Response {
	cl := d.cl
	cl.t.Helper()
	d.seq++
	host, port, _ := strings.Cut(cl.addr, ":")
	msg := func(method, cseq, body string, extra ...string) string {
		lines := []string{
			method + " " + d.ruri + " SIP/2.0",
			"Via: SIP/2.0/TCP " + cl.addr + ";branch=z9hG4bK" + sipmsg.GenerateTagN(10),
			"From: <sip:carrier@" + host + ">;tag=" + d.tag,
			"To: " + d.to,
			"Call-ID: " + d.callID,
			"CSeq: " + cseq + " " + method,
			"Max-Forwards: 70",
			"Contact: <sip:carrier@" + host + ":" + port + ";transport=tcp>",
		}
		lines = append(lines, extra...)
		if body != "" {
			lines = append(lines, "Content-Type: application/sdp")
		}
		return strings.Join(append(lines, "Content-Length: "+strconv.Itoa(len(body)), "", body), "\r\n")
	}
	seq := strconv.Itoa(d.seq)
	cl.send(msg(method, seq, body, extra...))
	for {
		select {
		case m := <-cl.msgs:
			res, ok := m.(*sipmsg.Response)
			if !ok || res.StatusCode < 200 || res.CSeq().MethodName != sipmsg.RequestMethod(method) {
				continue
			}
			if method == "INVITE" && res.StatusCode < 300 {
				to := d.to
				d.to = res.To().Value()
				cl.send(msg("ACK", seq, ackSDP))
				d.to = to
			}
			return res
		case <-time.After(5 * time.Second):
			cl.t.Fatalf("no final answer to %s", method)
			return nil
		}
	}
}
