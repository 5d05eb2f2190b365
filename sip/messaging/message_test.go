package messaging_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/imcall/b2bua/mediastore"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/sip/messaging"
)

// mediaEnv is env with the media rules on: a media store over the same
// SQLite registry, served over loopback HTTP, with a clock the test moves.
type mediaEnv struct {
	*env
	http  *httptest.Server
	media *mediastore.Store
	clock *testClock
}

type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func newMediaEnv(t *testing.T, retryMin time.Duration, opts ...envOpt) *mediaEnv {
	t.Helper()
	me := &mediaEnv{clock: &testClock{}}
	mux := http.NewServeMux()
	me.http = httptest.NewServer(mux)
	t.Cleanup(me.http.Close)
	withMessaging := func(c *b2bConfig) {
		store := c.Terminals.(*sqlite.Store)
		ms, err := mediastore.New(mediastore.Config{DB: store, TTL: time.Hour, Now: me.clock.now, Logger: c.Logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ms.Close() })
		me.media = ms
		mux.Handle(mediastore.PathPrefix, ms)
		c.Messaging = &messaging.Rules{Media: ms, Pending: store, Terminals: store, Bindings: store, BaseURL: me.http.URL, MaxSize: 32 << 10,
			ForwardTimeout: 2 * time.Second, RetryMin: retryMin, RetryMax: 4 * retryMin}
	}
	me.env = newEnv(t, append([]envOpt{withMessaging}, opts...)...)
	return me
}

// addTerminal gives imID an active legacy terminal with caps, located by
// the simulator at addr in state st.
func (e *env) addTerminal(imID, imsi, addr string, st scp.State, caps registry.Caps) {
	e.t.Helper()
	e.addUser(imID)
	term := e.addLegacy(imID, imsi, addr, st)
	if caps == registry.CapAudio {
		return
	}
	ctx := context.Background()
	if _, err := e.store.Deactivate(ctx, term.ID); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.RemoveTerminal(ctx, term.ID); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.AddTerminal(ctx, registry.NewTerminal{IMID: imID, MobileID: term.MobileID, Kind: registry.Legacy, Caps: caps, Active: true}); err != nil {
		e.t.Fatal(err)
	}
}

// message sends a MESSAGE from p to user over transport ("udp" or "tcp").
func (p *peer) message(ctx context.Context, e *env, user, transport, ctype string, body []byte, hdrs ...sipmsg.Header) (*sipmsg.Response, error) {
	uri := e.uri(user)
	cli := p.cli
	if transport == "tcp" {
		uri.UriParams = sipmsg.NewParams()
		uri.UriParams.Add("transport", "tcp")
		ua, err := sipgo.NewUA(sipgo.WithUserAgentTransportLayerOptions(sipmsg.WithTransportLayerLogger(slog.New(slog.DiscardHandler))))
		if err != nil {
			return nil, err
		}
		defer ua.Close()
		if cli, err = sipgo.NewClient(ua, sipgo.WithClientLogger(slog.New(slog.DiscardHandler))); err != nil {
			return nil, err
		}
	}
	req := sipmsg.NewRequest(sipmsg.MESSAGE, uri)
	from := &sipmsg.FromHeader{DisplayName: "Alice", Address: sipmsg.Uri{Scheme: "sip", User: p.name, Host: "im.test"}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(sipmsg.NewHeader("Content-Type", ctype))
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	req.SetBody(body)
	if transport == "tcp" {
		req.SetTransport("TCP")
	}
	return cli.Do(ctx, req)
}

var linkPattern = regexp.MustCompile(`https?://\S+/m/[A-Za-z0-9_-]+`)

// fetch GETs url and returns the status and body.
func fetch(t *testing.T, url string) (int, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// fakePNG is n bytes that start like a PNG.
func fakePNG(n int) []byte {
	b := bytes.Repeat([]byte{0x5a}, n)
	copy(b, "\x89PNG\r\n\x1a\n")
	return b
}

// TestMessageStoreAndLink: an image to a terminal without the image
// capability is stored; the terminal receives a text MESSAGE whose link
// gives exactly the bytes sent, until the link expires.
func TestMessageStoreAndLink(t *testing.T) {
	logs := &lockedBuffer{}
	e := newMediaEnv(t, time.Hour, func(c *b2bConfig) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	alice := newPeer(t, "alice")
	term := newPeer(t, "bobterm")
	e.addTerminal("bob", "001010000000001", term.addr, scp.Online, registry.CapAudio|registry.CapText)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	img := fakePNG(20000) // over the UDP limit: the sender uses TCP
	cpimImg := fakePNG(500)
	cpimBody := append([]byte("From: Alice <sip:alice@im.test>\r\nTo: <sip:bob@im.test>\r\nDateTime: 2026-01-02T03:04:05Z\r\n\r\nContent-Type: image/png\r\n\r\n"), cpimImg...)
	tests := []struct {
		name, transport, ctype string
		body, want             []byte
	}{
		{"image over TCP", "tcp", "image/png", img, img},
		{"image in CPIM over UDP", "udp", "message/cpim", cpimBody, cpimImg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := alice.message(ctx, e.env, "bob", tt.transport, tt.ctype, tt.body)
			if err != nil || res.StatusCode != 202 {
				t.Fatalf("MESSAGE: %v %v, want 202", res, err)
			}
			got := term.waitRequest(sipmsg.MESSAGE, 3*time.Second)
			if ct := got.ContentType().Value(); !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("terminal got %s, want text/plain", ct)
			}
			text := string(got.Body())
			if got.From().Address.User != "alice" || !strings.Contains(text, "alice sent you an image (image/png") {
				t.Errorf("From %s, text %q", got.From().Address.User, text)
			}
			link := linkPattern.FindString(text)
			if !strings.HasPrefix(link, e.http.URL+"/m/") {
				t.Fatalf("no link to %s in %q", e.http.URL, text)
			}
			status, body := fetch(t, link)
			if status != 200 || sha256.Sum256(body) != sha256.Sum256(tt.want) {
				t.Fatalf("GET link: %d, %d bytes; want 200 and the %d bytes sent", status, len(body), len(tt.want))
			}
			// An unknown token of the same shape: 404.
			tok := link[strings.LastIndex(link, "/")+1:]
			if strings.Contains(logs.String(), tok) {
				t.Errorf("the token appears in the log")
			}
			if !strings.Contains(logs.String(), "media="+mediastore.LogID(tok)) {
				t.Errorf("the log does not name the media by its LogID:\n%s", logs.String())
			}
			other := strings.Repeat("A", len(tok))
			if status, _ := fetch(t, e.http.URL+"/m/"+other); status != 404 {
				t.Errorf("unknown token: %d, want 404", status)
			}
		})
	}
	// Past the TTL every link answers 410.
	e.clock.add(2 * time.Hour)
	res, err := alice.message(ctx, e.env, "bob", "udp", "image/png", fakePNG(500))
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("MESSAGE: %v %v", res, err)
	}
	link := linkPattern.FindString(string(term.waitRequest(sipmsg.MESSAGE, 3*time.Second).Body()))
	e.clock.add(2 * time.Hour)
	if status, _ := fetch(t, link); status != 410 {
		t.Errorf("expired link: %d, want 410", status)
	}
}

// TestMessageForwarded: a capable terminal gets the content itself, text
// or image, and the sender the terminal's answer.
func TestMessageForwarded(t *testing.T) {
	e := newMediaEnv(t, time.Hour)
	alice := newPeer(t, "alice")
	term := newPeer(t, "carolterm")
	e.addTerminal("carol", "001010000000002", term.addr, scp.Online, registry.CapAudio|registry.CapText|registry.CapImage)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		ctype string
		body  []byte
	}{
		{"text/plain;charset=utf-8", []byte("hello carol")},
		{"image/png", fakePNG(600)},
	} {
		res, err := alice.message(ctx, e.env, "carol", "udp", tc.ctype, tc.body)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %v %v, want 200", tc.ctype, res, err)
		}
		got := term.waitRequest(sipmsg.MESSAGE, 3*time.Second)
		if got.ContentType().Value() != tc.ctype || !bytes.Equal(got.Body(), tc.body) {
			t.Errorf("terminal got %s %d bytes, want %s as sent", got.ContentType().Value(), len(got.Body()), tc.ctype)
		}
		if got.From().Address.User != "alice" || got.From().Address.Host != "im.test" {
			t.Errorf("From = %s", got.From().Value())
		}
	}
	// An image too large for the terminal's UDP leg is linked instead.
	res, err := alice.message(ctx, e.env, "carol", "tcp", "image/png", fakePNG(5000))
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("large image: %v %v, want 202", res, err)
	}
	if got := term.waitRequest(sipmsg.MESSAGE, 3*time.Second); linkPattern.FindString(string(got.Body())) == "" {
		t.Errorf("large image: terminal got %q, want a link", got.Body())
	}
}

// TestMessageDeferred: the recipient's terminal is absent; the sender gets
// 202, the message goes out once the SCP reports the terminal online, and
// the sender is told.
func TestMessageDeferred(t *testing.T) {
	e := newMediaEnv(t, 100*time.Millisecond)
	alice := newPeer(t, "alice")
	term := newPeer(t, "daveterm")
	e.addTerminal("dave", "001010000000003", "", scp.Absent, registry.CapAudio|registry.CapText)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := alice.message(ctx, e.env, "dave", "udp", "text/plain", []byte("call me"))
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("MESSAGE to an absent terminal: %v %v, want 202", res, err)
	}
	// A few sweeps find the terminal still absent.
	waitFor(t, func() bool {
		ps, _ := e.store.PendingFor(ctx, "dave")
		return len(ps) == 1 && ps[0].Attempts >= 2
	})
	select {
	case r := <-term.requests:
		t.Fatalf("terminal reached while absent: %s", r.StartLine())
	default:
	}
	if _, err := e.sim.Move("imsi:001010000000003", netip.MustParseAddrPort(term.addr)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.SetState("imsi:001010000000003", scp.Online); err != nil {
		t.Fatal(err)
	}
	got := term.waitRequest(sipmsg.MESSAGE, 5*time.Second)
	if string(got.Body()) != "call me" || got.From().Address.User != "alice" {
		t.Errorf("terminal got %q from %s", got.Body(), got.From().Address.User)
	}
	notice := alice.waitRequest(sipmsg.MESSAGE, 5*time.Second)
	if !strings.Contains(string(notice.Body()), "Your message to dave has been delivered") || notice.From().Address.User != "dave" {
		t.Errorf("notice %q from %s", notice.Body(), notice.From().Address.User)
	}
	waitFor(t, func() bool { ps, _ := e.store.PendingFor(ctx, "dave"); return len(ps) == 0 })
}

// TestMessageDeliveredOnRegister: a smart terminal's REGISTER delivers its
// user's kept messages at once, long before the next retry.
func TestMessageDeliveredOnRegister(t *testing.T) {
	e := newMediaEnv(t, time.Hour)
	alice := newPeer(t, "alice")
	term := newPeer(t, "erinphone")
	e.addUser("erin")
	mid, _ := registry.ParseMAC("00:1a:2b:3c:4d:5e")
	if _, err := e.store.AddTerminal(context.Background(), registry.NewTerminal{IMID: "erin", MobileID: mid, Kind: registry.Smart,
		Caps: registry.CapAudio | registry.CapText | registry.CapImage, Active: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	img := fakePNG(700)
	res, err := alice.message(ctx, e.env, "erin", "udp", "image/png", img)
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("MESSAGE to an unregistered terminal: %v %v, want 202", res, err)
	}
	if res, err := term.register(ctx, e.env, "erin", "<sip:erin@"+term.addr+">", 3600, "", ""); err != nil || res.StatusCode != 200 {
		t.Fatalf("REGISTER: %v %v", res, err)
	}
	got := term.waitRequest(sipmsg.MESSAGE, 5*time.Second)
	if !bytes.Equal(got.Body(), img) {
		t.Errorf("terminal got %d bytes, want the image", len(got.Body()))
	}
	alice.waitRequest(sipmsg.MESSAGE, 5*time.Second)
}

// TestMessageRefused: each limit gives its answer, and nothing reaches
// the terminal.
func TestMessageRefused(t *testing.T) {
	e := newMediaEnv(t, time.Hour, func(c *b2bConfig) {
		real := c.Locator
		c.Locator = locatorFunc(func(ctx context.Context, id string) (scp.Location, error) {
			if id == "imsi:001010000000005" {
				return scp.Location{}, fmt.Errorf("connect: %w", scp.ErrUnavailable)
			}
			return real.Locate(ctx, id)
		})
	})
	alice := newPeer(t, "alice")
	term := newPeer(t, "bobterm")
	e.addTerminal("bob", "001010000000001", term.addr, scp.Online, registry.CapAudio|registry.CapText|registry.CapImage)
	e.addTerminal("mute", "001010000000004", term.addr, scp.Online, registry.CapAudio)
	e.addTerminal("cut", "001010000000005", term.addr, scp.Online, registry.CapAudio|registry.CapText)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name, to, transport, ctype string
		body                       []byte
		status                     int
		header                     string
		warning                    string // the Warning text says this
	}{
		{"over the size limit", "bob", "tcp", "image/png", fakePNG(40 << 10), 413, "", "over"},
		{"unsupported type", "bob", "udp", "application/zip", []byte("PK\x03\x04"), 415, "Accept", "unsupported content type application/zip"},
		{"broken CPIM", "bob", "udp", "message/cpim", []byte("no headers"), 415, "Accept", "unsupported message body: cpim"},
		{"unknown user", "nobody", "udp", "text/plain", []byte("hi"), 404, "", ""},
		{"terminal shows no text", "mute", "udp", "image/png", fakePNG(100), 488, "", ""},
		{"SCP down", "cut", "udp", "text/plain", []byte("hi"), 503, "Retry-After", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := alice.message(ctx, e.env, tt.to, tt.transport, tt.ctype, tt.body)
			if err != nil || res.StatusCode != tt.status {
				t.Fatalf("got %v %v, want %d", res, err, tt.status)
			}
			if res.GetHeader("Reason") == nil {
				t.Error("no Reason header")
			}
			if tt.header != "" && res.GetHeader(tt.header) == nil {
				t.Errorf("no %s header", tt.header)
			}
			if w := res.GetHeader("Warning"); tt.warning != "" && (w == nil || !strings.Contains(w.Value(), tt.warning)) {
				t.Errorf("Warning %v, want it to say %q", w, tt.warning)
			}
		})
	}
	t.Run("over the MTU on UDP", func(t *testing.T) {
		body := strings.Repeat("x", 1400)
		res := exchangeUDP(t, e.addr, func(local string) string {
			return strings.Replace(rawRequest("MESSAGE", "sip:bob@"+e.addr, local, "Content-Type: text/plain"),
				"Content-Length: 0\r\n\r\n", "Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body, 1)
		})
		if res.StatusCode != 513 {
			t.Fatalf("got %d, want 513", res.StatusCode)
		}
	})
	select {
	case r := <-term.requests:
		t.Fatalf("terminal reached: %s", r.StartLine())
	default:
	}
}

// TestMessageNeedsAuthentication: MESSAGE is challenged like INVITE.
func TestMessageNeedsAuthentication(t *testing.T) {
	e := newMediaEnv(t, time.Hour, withDigest())
	alice := newPeer(t, "alice")
	term := newPeer(t, "bobterm")
	e.addUser("alice")
	e.addTerminal("bob", "001010000000001", term.addr, scp.Online, registry.CapAudio|registry.CapText)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := alice.message(ctx, e.env, "bob", "udp", "text/plain", []byte("hi"))
	if err != nil || res.StatusCode != 407 || res.GetHeader("Proxy-Authenticate") == nil {
		t.Fatalf("unauthenticated MESSAGE: %v %v, want 407", res, err)
	}
	// The same MESSAGE with alice's credentials goes through.
	req := sipmsg.NewRequest(sipmsg.MESSAGE, e.uri("bob"))
	from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: "alice", Host: "im.test"}, Params: sipmsg.NewParams()}
	from.Params.Add("tag", sipmsg.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "text/plain"))
	req.SetBody([]byte("hi"))
	if res, err = alice.cli.Do(ctx, req); err != nil || res.StatusCode != 407 {
		t.Fatalf("first try: %v %v", res, err)
	}
	res, err = alice.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "alice", Password: "secret-alice"})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("authenticated MESSAGE: %v %v, want 200", res, err)
	}
	if got := term.waitRequest(sipmsg.MESSAGE, 3*time.Second); string(got.Body()) != "hi" || got.GetHeader("Proxy-Authorization") != nil {
		t.Errorf("terminal got %q, credentials forwarded: %v", got.Body(), got.GetHeader("Proxy-Authorization"))
	}
}

// TestMessageInCall: during a call, an image the terminal cannot render
// is relayed in the dialog as a link; text goes through as it is.
func TestMessageInCall(t *testing.T) {
	e := newMediaEnv(t, time.Hour)
	alice := newPeer(t, "alice")
	term := newPeer(t, "bobterm")
	e.addTerminal("bob", "001010000000001", term.addr, scp.Online, registry.CapAudio|registry.CapText)
	term.setInvite(answerer(term))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, _, err := alice.invite(ctx, e.uri("bob"), sipgo.AnswerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	term.waitRequest(sipmsg.INVITE, time.Second)
	img := fakePNG(800)
	for _, tc := range []struct {
		ctype string
		body  []byte
	}{{"image/png", img}, {"text/plain", []byte("can you see it?")}} {
		req := sipmsg.NewRequest(sipmsg.MESSAGE, dlg.InviteResponse.Contact().Address)
		req.AppendHeader(sipmsg.NewHeader("Content-Type", tc.ctype))
		req.SetBody(tc.body)
		res, err := dlg.Do(ctx, req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("in-dialog MESSAGE %s: %v %v", tc.ctype, res, err)
		}
		got := term.waitRequest(sipmsg.MESSAGE, 3*time.Second)
		if tag, _ := got.To().Params.Get("tag"); tag == "" {
			t.Errorf("%s: relayed outside the dialog", tc.ctype)
		}
		if tc.ctype == "text/plain" {
			if string(got.Body()) != string(tc.body) {
				t.Errorf("text relayed as %q", got.Body())
			}
			continue
		}
		link := linkPattern.FindString(string(got.Body()))
		if link == "" {
			t.Fatalf("terminal got %q, want a link", got.Body())
		}
		if status, body := fetch(t, link); status != 200 || !bytes.Equal(body, img) {
			t.Errorf("link: %d, %d bytes", status, len(body))
		}
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e.env)
}

// lockedBuffer is a log sink the server's goroutines share with the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestMessageGivenUp: a message kept longer than KeepFor is dropped and
// the sender told.
func TestMessageGivenUp(t *testing.T) {
	e := newMediaEnv(t, 50*time.Millisecond, func(c *b2bConfig) { c.Messaging.KeepFor = 300 * time.Millisecond })
	alice := newPeer(t, "alice")
	e.addTerminal("gone", "001010000000006", "", scp.Absent, registry.CapAudio|registry.CapText)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := alice.message(ctx, e.env, "gone", "udp", "text/plain", []byte("anyone?"))
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("MESSAGE: %v %v, want 202", res, err)
	}
	notice := alice.waitRequest(sipmsg.MESSAGE, 5*time.Second)
	if !strings.Contains(string(notice.Body()), "Your message to gone could not be delivered") {
		t.Errorf("notice %q", notice.Body())
	}
	if ps, _ := e.store.PendingFor(ctx, "gone"); len(ps) != 0 {
		t.Errorf("%d messages still kept", len(ps))
	}
}

// TestOptionsAcceptsMessageMedia: with store-and-link configured, an OPTIONS
// probe learns which MESSAGE bodies the server takes (RFC 3261 §11.2).
func TestOptionsAcceptsMessageMedia(t *testing.T) {
	e := newMediaEnv(t, time.Second)
	res := exchangeUDP(t, e.addr, func(l string) string { return rawRequest("OPTIONS", "sip:"+e.addr, l) })
	a := res.GetHeader("Accept")
	if res.StatusCode != 200 || a == nil {
		t.Fatalf("OPTIONS: %d, Accept %v", res.StatusCode, a)
	}
	for _, want := range []string{"application/sdp", "text/plain", "image/*", "message/cpim"} {
		if !strings.Contains(a.Value(), want) {
			t.Errorf("Accept %q lacks %s", a.Value(), want)
		}
	}
}
