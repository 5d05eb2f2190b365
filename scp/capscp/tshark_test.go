package capscp

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imcall/b2bua/internal/testenv"
	"github.com/imcall/b2bua/scp/ss7/pcap"
)

// capture runs lookups from a client to the real server over loopback TCP
// and returns the client's capture file.
func capture(t *testing.T, proto Protocol, ids ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cap.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcap.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t, "127.0.0.1:0")
	startSCP(t, ln, newSim(t), nil)
	c := newClient(t, Config{Protocol: proto, Addr: ln.Addr().String(), CalledNumber: "491701234567", Pcap: w})
	for _, id := range ids {
		if _, err := c.Locate(context.Background(), id); err != nil {
			t.Logf("%s: %v", id, err)
		}
	}
	c.Close()
	return path
}

func tshark(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).Output() // stderr ("Running as user root") ignored
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	return string(out)
}

// TestTshark: an independent decoder reads a real backend-to-server run
// with no malformed frame and no warning, and finds our field values.
func TestTshark(t *testing.T) {
	bin := testenv.NeedTool(t, "tshark")
	path := capture(t, CAP, "imsi:"+imsiOnline, "imsi:"+imsiBusy, "imsi:"+imsiAbsent, "imsi:"+imsiUnknown)

	if out := tshark(t, bin, "-r", path, "-Y", "_ws.malformed || _ws.expert.severity >= warning"); strings.TrimSpace(out) != "" {
		t.Fatalf("tshark found problems:\n%s\n%s", out, tshark(t, bin, "-r", path, "-V"))
	}
	if out := tshark(t, bin, "-r", path, "-q", "-z", "expert,warn"); strings.Contains(out, "Warning") || strings.Contains(out, "Error") {
		t.Fatalf("expert info:\n%s", out)
	}
	// The protocol stack tshark saw for the lookups.
	stacks := tshark(t, bin, "-r", path, "-Y", "tcap", "-T", "fields", "-e", "frame.protocols")
	for _, line := range strings.Split(strings.TrimSpace(stacks), "\n") {
		if !strings.HasSuffix(line, "ip:sctp:m3ua:sccp:tcap:camel") {
			t.Errorf("stack %q", line)
		}
	}
	fields := tshark(t, bin, "-r", path, "-Y", "tcap", "-T", "fields", "-E", "separator=|",
		"-e", "tcap.otid", "-e", "tcap.dtid", "-e", "tcap.application_context_name", "-e", "camel.local",
		"-e", "e212.imsi", "-e", "camel.eventTypeBCSM", "-e", "isup.called", "-e", "camel.cause_indicator")
	want := []string{
		"00000001||0.4.0.0.1.0.50.1|0|001010123456789|12|491701234567|",
		"|00000001|0.4.0.0.1.0.50.1|20|||919200000201005060|",
		"00000002||0.4.0.0.1.0.50.1|0|001010000000002|12|491701234567|",
		"|00000002|0.4.0.0.1.0.50.1|22||||17",
		"00000003||0.4.0.0.1.0.50.1|0|001010000000003|12|491701234567|",
		"|00000003|0.4.0.0.1.0.50.1|22||||20",
		"00000004||0.4.0.0.1.0.50.1|0|001010000000099|12|491701234567|",
		"|00000004|0.4.0.0.1.0.50.1|||||", // ReturnError: checked below
	}
	got := strings.Split(strings.TrimSpace(fields), "\n")
	if len(got) != len(want) {
		t.Fatalf("tshark fields:\n%s", fields)
	}
	for i := range want[:7] {
		if got[i] != want[i] {
			t.Errorf("frame %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	if !strings.HasPrefix(got[7], "|00000004|0.4.0.0.1.0.50.1|") {
		t.Errorf("returnError frame: %s", got[7])
	}
	// The ReturnError names missingCustomerRecord.
	if v := tshark(t, bin, "-r", path, "-V", "-Y", "tcap.dtid == 00:00:00:04"); !strings.Contains(v, "missingCustomerRecord") {
		t.Errorf("no missingCustomerRecord in:\n%s", v)
	}
}

// TestTsharkMSISDN: a lookup by MSISDN puts the number in
// calledPartyBCDNumber, which tshark decodes as an international E.164
// number of TS 24.008 (and not as an IMSI), with no malformed frame and no
// warning; the server answers it like any IMSI lookup.
func TestTsharkMSISDN(t *testing.T) {
	bin := testenv.NeedTool(t, "tshark")
	path := capture(t, CAP, "msisdn:"+msisdnOnline, "msisdn:"+msisdnBusy, "msisdn:"+msisdnUnknown)
	if out := tshark(t, bin, "-r", path, "-Y", "_ws.malformed || _ws.expert.severity >= warning"); strings.TrimSpace(out) != "" {
		t.Fatalf("tshark found problems:\n%s\n%s", out, tshark(t, bin, "-r", path, "-V"))
	}
	fields := tshark(t, bin, "-r", path, "-Y", "tcap", "-T", "fields", "-E", "separator=|",
		"-e", "tcap.otid", "-e", "tcap.dtid", "-e", "camel.local", "-e", "e212.imsi",
		"-e", "camel.calledPartyBCDNumber", "-e", "gsm_a.dtap.cld_party_bcd_num", "-e", "isup.called", "-e", "camel.cause_indicator")
	want := []string{
		"00000001||0||91446123690010|441632960001|491701234567|",
		"|00000001|20||||919200000201205062|",
		"00000002||0||91446123690020|441632960002|491701234567|",
		"|00000002|22|||||17",
		"00000003||0||91446123690099|441632960099|491701234567|",
		"|00000003||||||", // ReturnError: checked below
	}
	if got := strings.Split(strings.TrimSpace(fields), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tshark fields:\n%s\nwant:\n%s", fields, strings.Join(want, "\n"))
	}
	v := tshark(t, bin, "-r", path, "-V", "-Y", "tcap.otid == 00:00:00:01")
	for _, s := range []string{"Extension: No Extension", "Type of number: International Number (0x1)", "Numbering plan identification: ISDN/Telephony Numbering", "Called Party BCD Number: 441632960001"} {
		if !strings.Contains(v, s) {
			t.Errorf("no %q in:\n%s", s, v)
		}
	}
	if v := tshark(t, bin, "-r", path, "-V", "-Y", "tcap.dtid == 00:00:00:03"); !strings.Contains(v, "missingCustomerRecord") {
		t.Errorf("no missingCustomerRecord in:\n%s", v)
	}
}

// TestTsharkExtensions: our private extensions (IPv6 address in Connect,
// IMSI or MSISDN in INAP's InitialDP) decode, with only the documented warning that
// tshark has no dissector for our OID.
func TestTsharkExtensions(t *testing.T) {
	bin := testenv.NeedTool(t, "tshark")
	for _, tc := range []struct {
		name  string
		proto Protocol
		id    string
		prefs []string
	}{
		{"CAP IPv6 connect", CAP, "imsi:" + imsiOnline6, nil},
		{"INAP", INAP, "imsi:" + imsiOnline, []string{"-o", "inap.ssn:241"}},
		{"INAP MSISDN", INAP, "msisdn:" + msisdnOnline, []string{"-o", "inap.ssn:241"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := capture(t, tc.proto, tc.id)
			args := append([]string{"-r", path}, tc.prefs...)
			if out := tshark(t, bin, append(args, "-Y", "_ws.malformed || _ws.expert.severity >= error")...); strings.TrimSpace(out) != "" {
				t.Fatalf("malformed or errors:\n%s", out)
			}
			// Exactly one expert item at warning level or above, in the
			// frame with our extension: group Undecoded (PI_UNDECODED).
			warn := tshark(t, bin, append(args, "-Y", "_ws.expert.severity >= warning", "-T", "fields",
				"-e", "_ws.expert.message", "-e", "_ws.expert.group")...)
			lines := strings.Split(strings.TrimSpace(warn), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "BER: Dissector for OID not implemented") ||
				!strings.HasSuffix(lines[0], "\t83886080") {
				t.Fatalf("want exactly the documented Undecoded warning, got:\n%s", warn)
			}
			if tc.proto == INAP {
				if v := tshark(t, bin, append(args, "-V")...); !strings.Contains(v, "cs1-ssp-to-scp") && !strings.Contains(v, "0.4.0.1.1.1.0.0") {
					t.Errorf("tshark did not see INAP:\n%s", v)
				}
			}
		})
	}
}
