package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/capscp"
	"github.com/imcall/b2bua/scp/ss7/assoc"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeCAP: `scpsim serve --cap` answers CAP from the same state the
// HTTP API changes, and `scpsim decode` reads the capture it wrote.
func TestServeCAP(t *testing.T) {
	capAddr := freePort(t)
	capture := filepath.Join(t.TempDir(), "cap.pcap")
	srv := startServer(t, "--subscribers", filepath.Join("..", "..", "testdata", "scp", "subscribers.json"),
		"--cap", capAddr, "--cap-pcap", capture)
	c, err := capscp.New(capscp.Config{Addr: capAddr, Timeout: 5 * time.Second, MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitUp(ctx); err != nil {
		t.Fatalf("no association: %v\n%s", err, srv.logs)
	}
	loc, err := c.Locate(ctx, "imsi:001010000000001")
	if err != nil || loc.State != scp.Online || loc.Addr.String() != "127.0.0.1:5062" {
		t.Fatalf("online subscriber: %+v %v", loc, err)
	}
	if _, err := c.Locate(ctx, "imsi:001010000000777"); !errors.Is(err, scp.ErrUnknownSubscriber) {
		t.Fatalf("unknown subscriber: %v", err)
	}
	// Change the state over HTTP; CAP sees it.
	if _, errOut, code := scpsim(t, []string{"SCPSIM_SERVER=" + srv.URL}, "subscriber", "state", "--imsi", "001010000000001", "busy"); code != 0 {
		t.Fatal(errOut)
	}
	if loc, err := c.Locate(ctx, "imsi:001010000000001"); err != nil || loc.State != scp.Busy {
		t.Fatalf("after state busy over HTTP: %+v %v", loc, err)
	}
	// A subscriber attached by MSISDN is found by the number in the
	// InitialDP.
	if _, err := c.Locate(ctx, "msisdn:+441632960001"); !errors.Is(err, scp.ErrUnknownSubscriber) {
		t.Fatalf("MSISDN before attach: %v", err)
	}
	if _, errOut, code := scpsim(t, []string{"SCPSIM_SERVER=" + srv.URL}, "subscriber", "attach", "--msisdn", "+441632960001", "--addr", "127.0.0.1:6004"); code != 0 {
		t.Fatal(errOut)
	}
	if loc, err := c.Locate(ctx, "msisdn:+441632960001"); err != nil || loc.State != scp.Online || loc.Addr.String() != "127.0.0.1:6004" {
		t.Fatalf("MSISDN subscriber: %+v %v", loc, err)
	}
	c.Close()
	srv.stop(t)

	out, errOut, code := scpsim(t, nil, "decode", capture)
	if code != 0 {
		t.Fatalf("decode: %d %s", code, errOut)
	}
	for _, want := range []string{"M3UA ASPUP", "TCAP Begin", "iMSI: 001010000000001", "operation 20 (connect)",
		"= 127.0.0.1:5062", "error 6 (missingCustomerRecord)", "cause: 17 (user busy)",
		"calledPartyBCDNumber: 441632960001 (type 1 international, plan 1 ISDN/E.164), MSISDN +441632960001", "= 127.0.0.1:6004"} {
		if !strings.Contains(out, want) {
			t.Errorf("decode output lacks %q:\n%s", want, out)
		}
	}
}

func TestDecodeHex(t *testing.T) {
	cmd := exec.Command(binary, "decode")
	cmd.Stdin = strings.NewReader("# TC-END releaseCall, absent\n64 40 49 04 00 00 00 01 6b 2a 28 28 06 07 00 11 86 05 01 01 01 a0 1d 61 1b 80 02 07 80 a1 09 06\n" +
		"07 04 00 00 01 00 32 01 a2 03 02 01 00 a3 05 a1 03 02 01 00 6c 0c a1 0a 02 01 01 02 01 16 04 02 80 94\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "cause: 20 (subscriber absent)") {
		t.Fatalf("%s", out)
	}
	// Truncated input decodes as far as it goes and says what is wrong.
	cmd = exec.Command(binary, "decode", "--layer", "tcap")
	cmd.Stdin = strings.NewReader("64 40 49 04 00 00")
	out, _ = cmd.Output()
	if !strings.Contains(string(out), "!! TCAP") {
		t.Fatalf("%s", out)
	}
	for _, tc := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"decode"}, "zz", "neither a pcap file nor a hex dump"},
		{[]string{"decode", "--layer", "isup"}, "00", "layer: must be m3ua, sccp or tcap"},
	} {
		cmd := exec.Command(binary, tc.args...)
		cmd.Stdin = strings.NewReader(tc.stdin)
		errOut, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(errOut), tc.want) {
			t.Errorf("%v: %v %s", tc.args, err, errOut)
		}
	}
}

func TestServeCAPErrors(t *testing.T) {
	tests := [][]string{
		{"serve", "--http", "127.0.0.1:0", "--cap", "udp://127.0.0.1:0"},
	}
	if assoc.CheckNetwork(assoc.SCTP) != nil {
		tests = append(tests, []string{"serve", "--http", "127.0.0.1:0", "--cap", "sctp://127.0.0.1:0"})
	}
	for _, args := range tests {
		_, errOut, code := scpsim(t, nil, args...)
		if code != 2 || !strings.Contains(errOut, "scpsim: cap: ") {
			t.Errorf("%v: exit %d %s", args, code, errOut)
		}
		if strings.Contains(args[len(args)-1], "sctp") && !strings.Contains(errOut, "does not support SCTP") {
			t.Errorf("unclear SCTP error: %s", errOut)
		}
	}
}

// TestREADMECAP runs the examples of the README's CAP SCP section: scpsim
// serving CAP, the B2BUA's --scp URL against it, and scpsim decode.
func TestREADMECAP(t *testing.T) {
	dir := t.TempDir()
	fixture, err := os.ReadFile(filepath.Join("..", "..", "testdata", "scp", "subscribers.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "testdata", "scp"), 0o755)
	os.WriteFile(filepath.Join(dir, "testdata", "scp", "subscribers.json"), fixture, 0o644)
	capAddr := freePort(t)
	var served bool
	for _, b := range readmeBlocks(t, "CAP SCP") {
		switch {
		case b.lang == "sh" && strings.HasPrefix(b.text, "scpsim serve "):
			args := strings.Fields(strings.TrimSuffix(strings.TrimSpace(b.text), "&"))[1:]
			for i := 1; i < len(args); i++ {
				switch args[i-1] {
				case "--http":
					args[i] = "127.0.0.1:0"
				case "--cap":
					args[i] = capAddr
				}
			}
			startServerIn(t, dir, args...)
			served = true
		case b.lang == "sh" && strings.HasPrefix(b.text, "b2bua serve "):
			_, spec, _ := strings.Cut(b.text, "--scp '")
			spec, _, _ = strings.Cut(spec, "'")
			cfg, err := capscp.ParseURL(strings.Replace(spec, "127.0.0.1:2905", capAddr, 1))
			if err != nil || !served {
				t.Fatalf("README.md:%d: %v (served: %v)", b.line, err, served)
			}
			cfg.Timeout, cfg.MinBackoff = 5*time.Second, 10*time.Millisecond
			c, err := capscp.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if err := c.WaitUp(ctx); err != nil {
				t.Fatal(err)
			}
			loc, err := c.Locate(ctx, "imsi:001010000000001")
			cancel()
			c.Close()
			if err != nil || loc.State != scp.Online || loc.Addr.String() != "127.0.0.1:5062" {
				t.Fatalf("README.md:%d: %+v %v", b.line, loc, err)
			}
		case b.lang == "sh" && strings.Contains(b.text, "scpsim decode"):
			cmd := exec.Command("sh", "-e", "-c", b.text)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"))
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("README.md:%d: %v", b.line, err)
			}
			if b.want == nil || string(out) != *b.want {
				t.Errorf("README.md:%d: output\n%s", b.line, out)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cap.pcap")); err != nil {
		t.Fatalf("--cap-pcap file: %v", err)
	}
}
