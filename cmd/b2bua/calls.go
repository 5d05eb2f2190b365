package main

import (
	"encoding/csv"
	"strconv"
	"time"

	"github.com/imcall/b2bua/provision"
	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/stores"
	"github.com/spf13/cobra"
)

func newCallsCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "calls", Short: "Read call records"}
	cmd.AddCommand(newCallsListCmd(opts))
	return cmd
}

var callHeader = []string{"ID", "STARTED", "CALLER", "CALLEE", "TERMINAL", "SCP", "OUTCOME", "SIP", "Q850", "CAUSE", "PDD", "SETUP", "TALK"}

func newCallsListCmd(opts *rootOptions) *cobra.Command {
	var since, im, outcome, output string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--since DURATION|TIME] [--im IMID] [--outcome OUTCOME] [--limit N] [--output table|json|csv]",
		Short: "List call records, newest first",
		Args:  args(),
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "only calls started within this long (1h, 30m) or since this RFC 3339 time")
	f.StringVar(&im, "im", "", "only calls this IM ID made or received")
	f.StringVar(&outcome, "outcome", "", "only calls with this outcome: answered, busy, absent, unknown, scp-down, cancelled, no-answer, failed or active")
	f.IntVar(&limit, "limit", 100, "at most this many calls (1 to 1000)")
	f.StringVarP(&output, "output", "o", "table", "output format: table, json or csv")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		switch output {
		case "table", "json", "csv":
		default:
			return &registry.ValidationError{Field: "output", Rule: "must be table, json or csv"}
		}
		// The API's validation, so a mistake gives the same words on both.
		flt, err := provision.CallQuery{Since: since, IMID: im, Outcome: outcome, Limit: strconv.Itoa(limit)}.Filter(time.Now())
		if err != nil {
			return err
		}
		return opts.withStore(cmd.Context(), func(st stores.Store) error {
			recs, err := st.ListCalls(cmd.Context(), flt)
			if err != nil {
				return err
			}
			l := provision.NewCallList(recs, flt.Limit)
			w := cmd.OutOrStdout()
			switch output {
			case "json":
				return writeJSON(w, l)
			case "csv":
				cw := csv.NewWriter(w)
				_ = cw.Write(append(append(callHeader[:len(callHeader):len(callHeader)], "ENDED", "CALL-ID"), "STATS"))
				for _, s := range l.Calls {
					_ = cw.Write(append(callRow(s, ""), timeOr(s.EndedAt, ""), s.CallID, string(s.Stats)))
				}
				cw.Flush()
				return cw.Error()
			}
			rows := [][]string{}
			for _, s := range l.Calls {
				rows = append(rows, callRow(s, "-"))
			}
			return table(w, callHeader, rows)
		})
	}
	return cmd
}

// callRow is a summary's columns under callHeader, with none for a value the
// record does not hold.
func callRow(s registry.CallSummary, none string) []string {
	or := func(v string) string {
		if v == "" {
			return none
		}
		return v
	}
	term, sip, q850 := "", "", ""
	if s.TerminalID != 0 {
		term = strconv.FormatInt(s.TerminalID, 10)
	}
	if s.SIPStatus != 0 {
		sip = strconv.Itoa(s.SIPStatus)
	}
	if s.Q850Cause != 0 {
		q850 = strconv.Itoa(s.Q850Cause)
	}
	secs := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'f', 3, 64)
	}
	return []string{strconv.FormatInt(s.ID, 10), s.StartedAt.Format(time.RFC3339), or(s.Caller), or(s.Callee), or(term),
		or(s.SCPOutcome), s.Outcome, or(sip), or(q850), or(s.EndCause), or(secs(s.PostDialSeconds)), or(secs(s.SetupSeconds)), or(secs(s.TalkSeconds))}
}

func timeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.Format(time.RFC3339Nano)
}
