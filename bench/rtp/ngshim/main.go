// Command ngshim puts rtpengine's "ng" control protocol (offer, answer,
// delete, ping over UDP, bencoded) in front of package rtpproxy, so that the
// media benchmark that drives rtpengine can drive our relay the same way.
// It is a bench tool, not a product: one offer makes one call, leg A is the
// from-tag's side, leg B answers.
//
//	ngshim -ng 127.0.0.1:2224 -ports 20000-49999 -for 120s [-kernel on]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imcall/b2bua/rtpproxy"
)

func main() {
	ngAddr := flag.String("ng", "127.0.0.1:2224", "ng control address (UDP)")
	bind := flag.String("bind", "127.0.0.1", "media bind address")
	adv := flag.String("advertise", "", "address written into SDP (default: -bind)")
	ports := flag.String("ports", "20000-49999", "media port range")
	workers := flag.Int("workers", 0, "relay threads (default GOMAXPROCS)")
	life := flag.Duration("for", 10*time.Minute, "exit after this long")
	kernel := flag.String("kernel", "off", "in-kernel forwarding of latched streams: off, auto or on")
	bpfStats := flag.Bool("bpf-stats", false, "with -kernel: have the kernel time the program, and print its runs and ns per run at exit")
	flag.Parse()
	if err := run(*ngAddr, *bind, *adv, *ports, *workers, *life, *kernel, *bpfStats); err != nil {
		fmt.Fprintln(os.Stderr, "ngshim:", err)
		os.Exit(1)
	}
}

func run(ngAddr, bind, adv, ports string, workers int, life time.Duration, kernel string, bpfStats bool) error {
	lo, hi, ok := strings.Cut(ports, "-")
	pmin, e1 := strconv.Atoi(lo)
	pmax, e2 := strconv.Atoi(hi)
	if !ok || e1 != nil || e2 != nil {
		return fmt.Errorf("bad -ports %q", ports)
	}
	cfg := rtpproxy.Config{PortMin: pmin, PortMax: pmax, Workers: workers, MediaTimeout: time.Hour,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	var err error
	if cfg.Kernel, err = rtpproxy.ParseKernelMode(kernel); err != nil {
		return err
	}
	if cfg.BindAddr, err = netip.ParseAddr(bind); err != nil {
		return err
	}
	if adv != "" {
		if cfg.AdvertiseAddr, err = netip.ParseAddr(adv); err != nil {
			return err
		}
	}
	proxy, err := rtpproxy.New(cfg)
	if err != nil {
		return err
	}
	defer proxy.Close()
	if bpfStats {
		st, err := rtpproxy.EnableKernelRunStats()
		if err != nil {
			return fmt.Errorf("-bpf-stats: %w", err)
		}
		defer st.Close()
		defer func() {
			if runs, total, err := proxy.KernelRunStats(); err == nil && runs > 0 {
				fmt.Fprintf(os.Stderr, "kernel program: %d runs, %v, %.0f ns per run\n", runs, total, float64(total.Nanoseconds())/float64(runs))
			}
		}()
	}
	pc, err := net.ListenPacket("udp", ngAddr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, life)
	defer cancel()
	go func() { <-ctx.Done(); pc.Close() }()
	fmt.Printf("ready (in-kernel forwarding: %+v)\n", proxy.Kernel())

	s := &server{proxy: proxy, calls: map[string]*rtpproxy.Call{}}
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		cookie, body, ok := bytes.Cut(buf[:n], []byte(" "))
		if !ok {
			continue
		}
		reply := s.handle(body)
		out := append(append(append([]byte{}, cookie...), ' '), bencode(reply)...)
		pc.WriteTo(out, from)
	}
}

type server struct {
	proxy *rtpproxy.Proxy
	calls map[string]*rtpproxy.Call
}

func (s *server) handle(body []byte) map[string]any {
	v, rest, err := bdecode(body)
	req, isDict := v.(map[string]any)
	if err != nil || len(rest) != 0 || !isDict {
		return fail("bad bencode")
	}
	str := func(k string) string { x, _ := req[k].(string); return x }
	switch cmd := str("command"); cmd {
	case "ping":
		return map[string]any{"result": "pong"}
	case "offer", "answer":
		id := str("call-id")
		c := s.calls[id]
		if c == nil {
			if cmd == "answer" {
				return fail("unknown call-id")
			}
			if c, err = s.proxy.NewCall(context.Background(), rtpproxy.CallConfig{ID: id}); err != nil {
				return fail(err.Error())
			}
			s.calls[id] = c
		}
		var out []byte
		if cmd == "offer" {
			out, err = c.RewriteOffer("a", "b", []byte(str("sdp")))
		} else {
			out, err = c.RewriteAnswer("b", "a", []byte(str("sdp")))
			c.Answered()
		}
		if err != nil {
			return fail(err.Error())
		}
		return map[string]any{"result": "ok", "sdp": string(out)}
	case "delete":
		id := str("call-id")
		if c := s.calls[id]; c != nil {
			c.Close()
			delete(s.calls, id)
		}
		return map[string]any{"result": "ok"}
	case "statistics", "list":
		m := s.proxy.Metrics()
		return map[string]any{"result": "ok", "calls": m.Calls, "packets": int(m.Packets), "dropped": int(m.Dropped),
			"kernel-packets": int(m.KernelPackets), "kernel-streams": m.KernelStreams}
	default:
		return fail("unsupported command " + strconv.Quote(cmd))
	}
}

func fail(reason string) map[string]any {
	return map[string]any{"result": "error", "error-reason": reason}
}

func bencode(v any) []byte {
	var b []byte
	switch x := v.(type) {
	case int:
		b = fmt.Appendf(b, "i%de", x)
	case string:
		b = fmt.Appendf(b, "%d:%s", len(x), x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, 'd')
		for _, k := range keys {
			b = append(b, bencode(k)...)
			b = append(b, bencode(x[k])...)
		}
		b = append(b, 'e')
	}
	return b
}

var errBencode = errors.New("bad bencode")

func bdecode(b []byte) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errBencode
	}
	switch c := b[0]; {
	case c == 'i':
		end := bytes.IndexByte(b, 'e')
		if end < 0 {
			return nil, nil, errBencode
		}
		n, err := strconv.Atoi(string(b[1:end]))
		return n, b[end+1:], err
	case c == 'l':
		var out []any
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			v, rest, err := bdecode(b)
			if err != nil {
				return nil, nil, err
			}
			out, b = append(out, v), rest
		}
		if len(b) == 0 {
			return nil, nil, errBencode
		}
		return out, b[1:], nil
	case c == 'd':
		out := map[string]any{}
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			k, rest, err := bdecode(b)
			if err != nil {
				return nil, nil, err
			}
			v, rest, err := bdecode(rest)
			if err != nil {
				return nil, nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, nil, errBencode
			}
			out[ks], b = v, rest
		}
		if len(b) == 0 {
			return nil, nil, errBencode
		}
		return out, b[1:], nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b, ':')
		if colon < 0 {
			return nil, nil, errBencode
		}
		n, err := strconv.Atoi(string(b[:colon]))
		if err != nil || n < 0 || colon+1+n > len(b) {
			return nil, nil, errBencode
		}
		return string(b[colon+1 : colon+1+n]), b[colon+1+n:], nil
	}
	return nil, nil, errBencode
}
