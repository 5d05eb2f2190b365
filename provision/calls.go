package provision

import (
	"net/http"
	"strconv"
	"time"

	"github.com/imcall/b2bua/registry"
)

// CallList is a page of call records, newest first: the body of GET
// /api/v1/calls and what `b2bua calls list --output json` prints.
// NextBefore, when set, is the before= of the next page.
type CallList struct {
	Calls      []registry.CallSummary `json:"calls"`
	NextBefore int64                  `json:"next_before,omitempty"`
}

// maxCallPage bounds one page of GET /api/v1/calls.
const maxCallPage = 1000

// NewCallList gives the view of a page of records read with limit: a full
// page has a next page to ask for.
func NewCallList(recs []registry.CallRecord, limit int) CallList {
	l := CallList{Calls: make([]registry.CallSummary, 0, len(recs))}
	for _, r := range recs {
		l.Calls = append(l.Calls, r.Summary())
	}
	if limit > 0 && len(recs) == limit {
		l.NextBefore = recs[len(recs)-1].ID
	}
	return l
}

// CallQuery is a call-record filter as the CLI flags and the query
// parameters give it; the empty string means no filter.
type CallQuery struct {
	Since, IMID, Outcome, Limit, Before string
}

// Filter validates q into a registry filter; a duration Since counts back
// from now.
func (q CallQuery) Filter(now time.Time) (registry.CallFilter, error) {
	var f registry.CallFilter
	var err error
	if q.IMID != "" {
		if f.IMID, err = registry.ParseIMID(q.IMID); err != nil {
			return f, err
		}
	}
	if q.Outcome != "" {
		if f.Outcome, err = registry.ParseOutcome(q.Outcome); err != nil {
			return f, err
		}
	}
	f.Limit = 100
	if q.Limit != "" {
		n, err := strconv.Atoi(q.Limit)
		if err != nil || n < 1 || n > maxCallPage {
			return f, &registry.ValidationError{Field: "limit", Rule: "must be a number from 1 to " + strconv.Itoa(maxCallPage)}
		}
		f.Limit = n
	}
	if q.Before != "" {
		n, err := strconv.ParseInt(q.Before, 10, 64)
		if err != nil || n < 1 {
			return f, &registry.ValidationError{Field: "before", Rule: "must be a call record ID (next_before of the previous page)"}
		}
		f.BeforeID = n
	}
	if q.Since != "" {
		if d, err := time.ParseDuration(q.Since); err == nil && d > 0 {
			f.Since = now.Add(-d)
		} else if f.Since, err = time.Parse(time.RFC3339, q.Since); err != nil {
			return f, &registry.ValidationError{Field: "since", Rule: "must be a duration such as 1h or 30m, or an RFC 3339 time such as 2030-01-02T15:04:05Z"}
		}
	}
	return f, nil
}

func (a *api) listCalls(w http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	f, err := CallQuery{Since: v.Get("since"), IMID: v.Get("im"), Outcome: v.Get("outcome"), Limit: v.Get("limit"), Before: v.Get("before")}.Filter(time.Now())
	if err != nil {
		return err
	}
	recs, err := a.store.ListCalls(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewCallList(recs, f.Limit))
	return nil
}
