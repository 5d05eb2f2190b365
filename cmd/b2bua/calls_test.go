package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
)

// seedCalls writes one record of each kind the SIP server writes, started a
// minute apart from t0, and returns the database path.
func seedCalls(t *testing.T, t0 time.Time) string {
	t.Helper()
	db := newDB(t)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := func(m int, s float64) time.Time {
		return t0.Add(time.Duration(m)*time.Minute + time.Duration(s*float64(time.Second)))
	}
	for _, r := range []registry.CallRecord{
		{CallID: "c1@h", Caller: "sip:carol@im.example", Callee: "alice", TerminalID: 1, SCPOutcome: "online 127.0.0.1:5062",
			StartedAt: at(0, 0), RingingAt: at(0, 0.75), AnsweredAt: at(0, 2.5), EndedAt: at(1, 2.5), EndCause: "caller BYE",
			Stats: `{"a":{"packets_in":3000,"lost":2},"b":{"packets_in":2998,"lost":0}}`},
		{CallID: "c2@h", Caller: "sip:carol@im.example", Callee: "bob", SCPOutcome: "busy",
			StartedAt: at(1, 0), EndedAt: at(1, 0.1), EndCause: "486 user busy", SIPStatus: 486, Q850Cause: 17},
		{CallID: "c3@h", Caller: "sip:alice@im.example", Callee: "bob", SCPOutcome: "absent",
			StartedAt: at(2, 0), EndedAt: at(2, 0.1), EndCause: "480 absent"},
		{CallID: "c4@h", Caller: "sip:carol@im.example", Callee: "nobody", SCPOutcome: "unknown",
			StartedAt: at(3, 0), EndedAt: at(3, 0.1), EndCause: "404 unknown"},
		{CallID: "c5@h", Caller: "sip:carol@im.example", Callee: "alice", SCPOutcome: "timeout",
			StartedAt: at(4, 0), EndedAt: at(4, 2), EndCause: "504 SCP timeout"},
	} {
		if _, err := st.StartCall(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func TestCLICallsList(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	db := seedCalls(t, t0)
	want, err := os.ReadFile(filepath.Join("testdata", "calls_list.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ok(t, db, "", "calls", "list"); got != string(want) {
		t.Errorf("calls list:\n%s\nwant (testdata/calls_list.txt):\n%s", got, want)
	}
	tests := []struct {
		args []string
		want []string // call IDs, newest first
	}{
		{[]string{"--outcome", "answered"}, []string{"c1@h"}},
		{[]string{"--outcome", "busy"}, []string{"c2@h"}},
		{[]string{"--outcome", "absent"}, []string{"c3@h"}},
		{[]string{"--outcome", "unknown"}, []string{"c4@h"}},
		{[]string{"--outcome", "scp-down"}, []string{"c5@h"}},
		{[]string{"--im", "alice"}, []string{"c5@h", "c3@h", "c1@h"}},
		{[]string{"--im", "bob", "--limit", "1"}, []string{"c3@h"}},
		{[]string{"--since", "2030-01-02T15:03:00Z"}, []string{"c5@h", "c4@h"}},
		{[]string{"--since", "2030-01-02T16:03:00+01:00"}, []string{"c5@h", "c4@h"}},
		{[]string{"--outcome", "cancelled"}, []string{}},
	}
	for _, tt := range tests {
		var l struct {
			Calls []struct {
				CallID string `json:"call_id"`
			} `json:"calls"`
		}
		out := ok(t, db, "", append([]string{"calls", "list", "--output", "json"}, tt.args...)...)
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		got := []string{}
		for _, c := range l.Calls {
			got = append(got, c.CallID)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("calls list %v = %v, want %v", tt.args, got, tt.want)
		}
	}
}

func TestCLICallsListJSONAndCSV(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	db := seedCalls(t, t0)
	var l struct {
		Calls []map[string]any `json:"calls"`
	}
	if err := json.Unmarshal([]byte(ok(t, db, "", "calls", "list", "--output", "json", "--outcome", "answered")), &l); err != nil {
		t.Fatal(err)
	}
	c := l.Calls[0]
	for k, want := range map[string]any{"started_at": "2030-01-02T15:00:00Z", "answered_at": "2030-01-02T15:00:02.5Z",
		"ended_at": "2030-01-02T15:01:02.5Z", "ringing_at": "2030-01-02T15:00:00.75Z", "post_dial_delay_seconds": 0.75, "setup_seconds": 2.5, "talk_seconds": 60.0, "total_seconds": 62.5,
		"outcome": "answered", "sip_status": 200.0, "end_cause": "caller BYE", "terminal_id": 1.0, "scp_outcome": "online 127.0.0.1:5062"} {
		if c[k] != want {
			t.Errorf("%s = %v, want %v", k, c[k], want)
		}
	}
	if st, _ := c["stats"].(map[string]any); st["b"].(map[string]any)["packets_in"] != 2998.0 {
		t.Errorf("stats = %v", c["stats"])
	}

	rows, err := csv.NewReader(strings.NewReader(ok(t, db, "", "calls", "list", "--output", "csv", "--limit", "2"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || strings.Join(rows[0], ",") != "ID,STARTED,CALLER,CALLEE,TERMINAL,SCP,OUTCOME,SIP,Q850,CAUSE,PDD,SETUP,TALK,ENDED,CALL-ID,STATS" {
		t.Fatalf("csv = %q", rows)
	}
	if got := strings.Join(rows[1], ","); got != "5,2030-01-02T15:04:00Z,sip:carol@im.example,alice,,timeout,scp-down,504,,504 SCP timeout,,,,2030-01-02T15:04:02Z,c5@h," {
		t.Errorf("csv row = %q", got)
	}
}

func TestCLICallsListSinceDuration(t *testing.T) {
	now := time.Now().UTC()
	db := seedCalls(t, now.Add(-150*time.Minute)) // calls at -150, -149, ..., -146 minutes
	out := ok(t, db, "", "calls", "list", "--since", "148m", "--output", "json")
	var l struct {
		Calls []struct {
			CallID string `json:"call_id"`
		} `json:"calls"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Calls) != 2 || l.Calls[0].CallID != "c5@h" || l.Calls[1].CallID != "c4@h" {
		t.Errorf("--since 148m = %+v, want c5, c4", l.Calls)
	}
}

func TestCLICallsListBadArguments(t *testing.T) {
	db := newDB(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--outcome", "lost"}, "b2bua: outcome: must be one of active, answered, busy, absent, unknown, scp-down, cancelled, no-answer, failed\n"},
		{[]string{"--since", "yesterday"}, "b2bua: since: must be a duration such as 1h or 30m, or an RFC 3339 time such as 2030-01-02T15:04:05Z\n"},
		{[]string{"--limit", "0"}, "b2bua: limit: must be a number from 1 to 1000\n"},
		{[]string{"--output", "xml"}, "b2bua: output: must be table, json or csv\n"},
		{[]string{"--im", "Alice"}, ""},
	} {
		r := cli(t, db, "", append([]string{"calls", "list"}, tc.args...)...)
		if r.code == 0 || r.stdout != "" || (tc.want != "" && r.stderr != tc.want) {
			t.Errorf("calls list %v: exit %d, stdout %q, stderr %q; want %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
}

// TestREADMECallsSample checks the README's sample listing is what
// TestCLICallsList gets from its records.
func TestREADMECallsSample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "calls_list.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```text\n"+string(golden)+"```\n") {
		t.Error("README.md does not show testdata/calls_list.txt as the sample of calls list")
	}
}
