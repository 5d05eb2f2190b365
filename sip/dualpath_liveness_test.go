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
	ok := cl.invite(ruri.String(), sdpFor(rtp.port()), "P-Asserted-Identity: <tel:"+aliceMSISDN+">")
	if ok.StatusCode != 200 {
		t.Fatalf("carrier path over TCP: %v", ok)
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

// invite places a call over the flow with an SDP offer and ACKs its 2xx;
// the final response.
func (cl *tcpClient) invite(ruri, sdp string, extra ...string) *sipmsg.Response {
	cl.t.Helper()
	callID, tag := sipmsg.GenerateTagN(16), sipmsg.GenerateTagN(6)
	host, port, _ := strings.Cut(cl.addr, ":")
	head := func(method, branch string) []string {
		return []string{
			method + " " + ruri + " SIP/2.0",
			"Via: SIP/2.0/TCP " + cl.addr + ";branch=z9hG4bK" + branch,
			"From: <sip:carrier@" + host + ">;tag=" + tag,
			"Call-ID: " + callID,
			"Max-Forwards: 70",
		}
	}
	lines := append(head("INVITE", sipmsg.GenerateTagN(10)), "To: <"+ruri+">", "CSeq: 1 INVITE",
		"Contact: <sip:carrier@"+host+":"+port+";transport=tcp>", "Content-Type: application/sdp")
	lines = append(lines, extra...)
	lines = append(lines, "Content-Length: "+strconv.Itoa(len(sdp)), "", sdp)
	cl.send(strings.Join(lines, "\r\n"))
	for {
		select {
		case m := <-cl.msgs:
			res, ok := m.(*sipmsg.Response)
			if !ok || res.StatusCode < 200 {
				continue
			}
			if res.StatusCode < 300 {
				ack := append(head("ACK", sipmsg.GenerateTagN(10)), "To: "+res.To().Value(), "CSeq: 1 ACK", "Content-Length: 0", "", "")
				cl.send(strings.Join(ack, "\r\n"))
			}
			return res
		case <-time.After(5 * time.Second):
			cl.t.Fatal("no final answer to INVITE")
			return nil
		}
	}
}
