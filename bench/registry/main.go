// Command registry measures the call path's registry lookup,
// ActiveTerminal, on a SQLite file with many users: lookups per second from
// one goroutine, as the median of several runs.
//
// Modes:
//
//	cached  ActiveTerminal as the daemon calls it (the cache checks the
//	        WAL-index header for commits on every lookup)
//	churn   the same while another handle commits an activation every
//	        -churn-every, so the cache is dropped and refilled continually
//	sql     the same query through database/sql with a prepared statement
//	        and no cache, for comparison
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/sqlite"
)

func main() {
	users := flag.Int("users", 10000, "users in the database, each with two terminals, one active")
	runs := flag.Int("runs", 5, "runs per mode; the median is reported")
	dur := flag.Duration("duration", 2*time.Second, "length of one run")
	modes := flag.String("modes", "cached,churn,sql", "comma-separated modes to run: cached, churn, sql")
	churnEvery := flag.Duration("churn-every", 10*time.Millisecond, "interval between commits in churn mode")
	dir := flag.String("dir", "", "directory for the database file (default: a temporary directory, removed afterwards)")
	flag.Parse()

	ctx := context.Background()
	if *dir == "" {
		d, err := os.MkdirTemp("", "registry-bench-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	path := filepath.Join(*dir, "registry.db")
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ids, churnTerms, err := populate(ctx, s, *users)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("database %s: %d users, %d terminals\n", path, len(ids), 2*len(ids))

	for _, mode := range splitComma(*modes) {
		var rates []float64
		for range *runs {
			var r float64
			switch mode {
			case "cached":
				r, err = runLookups(ctx, *dur, ids, s.ActiveTerminal)
			case "churn":
				r, err = runChurn(ctx, *dur, ids, s, path, churnTerms, *churnEvery)
			case "sql":
				r, err = runSQL(ctx, *dur, ids, path)
			default:
				err = fmt.Errorf("unknown mode %q", mode)
			}
			if err != nil {
				log.Fatal(err)
			}
			rates = append(rates, r)
		}
		slices.Sort(rates)
		fmt.Printf("%-7s lookups/s median %9.0f  (runs: %s)\n", mode, rates[len(rates)/2], fmtRates(rates))
	}
}

func populate(ctx context.Context, s *sqlite.Store, n int) ([]string, [2]int64, error) {
	var churn [2]int64
	existing, err := s.Users(ctx)
	if err != nil {
		return nil, churn, err
	}
	if len(existing) < n {
		for i := len(existing); i < n; i++ {
			id := fmt.Sprintf("user%06d", i)
			if _, err := s.AddUser(ctx, registry.User{IMID: id, Creds: registry.NewCredentials(id, "im.example", "pw")}); err != nil {
				return nil, churn, err
			}
			for j := range 2 {
				m := registry.MobileID{Type: registry.IMSI, Value: fmt.Sprintf("0010%d%010d", j, i)}
				if _, err := s.AddTerminal(ctx, registry.NewTerminal{IMID: id, MobileID: m, Active: j == 0}); err != nil {
					return nil, churn, err
				}
			}
		}
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("user%06d", i)
	}
	ts, err := s.Terminals(ctx, ids[0])
	if err != nil {
		return nil, churn, err
	}
	churn = [2]int64{ts[0].ID, ts[1].ID}
	return ids, churn, nil
}

// runLookups calls lookup over every user in turn for d and returns the
// rate. Every answer is checked so that a broken store cannot look fast.
func runLookups(ctx context.Context, d time.Duration, ids []string, lookup func(context.Context, string) (registry.Terminal, error)) (float64, error) {
	start := time.Now()
	n := 0
	for {
		for range 1000 {
			t, err := lookup(ctx, ids[n%len(ids)])
			if err != nil && !errors.Is(err, registry.ErrNoActiveTerminal) {
				return 0, err
			}
			if err == nil && !t.Active {
				return 0, fmt.Errorf("lookup of %s returned an inactive terminal", ids[n%len(ids)])
			}
			n++
		}
		if el := time.Since(start); el >= d {
			return float64(n) / el.Seconds(), nil
		}
	}
}

// runChurn measures lookups while a second handle on the file (standing in
// for the CLI) flips user0's active terminal every `every`.
func runChurn(ctx context.Context, d time.Duration, ids []string, s *sqlite.Store, path string, terms [2]int64, every time.Duration) (float64, error) {
	w, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		return 0, err
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-tick.C:
				if _, err := w.Activate(ctx, terms[i%2]); err != nil && ctx.Err() == nil {
					done <- err
					return
				}
			}
		}
	}()
	r, err := runLookups(ctx, d, ids, s.ActiveTerminal)
	cancel()
	return r, errors.Join(err, <-done)
}

// runSQL is the uncached baseline: the query the cache answers on a miss,
// through database/sql.
func runSQL(ctx context.Context, d time.Duration, ids []string, path string) (float64, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_busy_timeout=5000")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	st, err := db.PrepareContext(ctx, `SELECT t.id, t.mobile_type, t.mobile_value, t.kind, t.caps, t.created
		FROM users u LEFT JOIN terminals t ON t.im_id = u.im_id AND t.active WHERE u.im_id = ?`)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return runLookups(ctx, d, ids, func(ctx context.Context, id string) (registry.Terminal, error) {
		var t registry.Terminal
		var typ, kind string
		var created int64
		err := st.QueryRowContext(ctx, id).Scan(&t.ID, &typ, &t.MobileID.Value, &kind, &t.Caps, &created)
		t.Active = true
		return t, err
	})
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func fmtRates(rs []float64) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%.0f", r)
	}
	return out
}
