// Package stores opens a registry backend from the setting an operator
// gives (b2bua --db ...): "sqlite:PATH", or a plain file path, which means
// the same; or a PostgreSQL connection URI (postgres://... or
// postgresql://...), the store several nodes share. Backends are found by
// scheme in one plain map, as in scp/locators.
//
// This is the only package that links the database drivers; the rest of
// the product programs against the interfaces of package registry.
package stores

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/registry/postgres"
	"github.com/imcall/b2bua/registry/sqlite"
)

// Store is everything the product asks of a registry backend: users and
// terminals, registrations and call records, stored media and deferred
// messages, trunks and DIDs. A backend may offer more, found by type assertion: the SQLite
// store writes call records in batches (WriteCalls) and names its file
// (Path).
type Store interface {
	registry.Store
	registry.SignalStore
	registry.MediaStore
	registry.NumberStore
	registry.CallStore
	registry.LeaseStore
}

// Options carry what a backend needs besides its spec. Every field is
// optional.
type Options struct {
	// Logger receives the backend's logs; nil discards.
	Logger *slog.Logger
}

// Constructor opens one kind of backend; rest is the spec after
// "scheme:" (for "sqlite:./b2bua.db", "./b2bua.db").
type Constructor func(ctx context.Context, rest string, opts Options) (Store, error)

// constructors maps a spec's scheme to its backend. It is never written
// after initialisation.
var constructors = map[string]Constructor{
	"sqlite":     openSQLite,
	"postgres":   openPostgres,
	"postgresql": openPostgres,
}

// Schemes lists the known schemes, sorted.
func Schemes() []string {
	return slices.Sorted(maps.Keys(constructors))
}

// schemePattern is a URI scheme (RFC 3986 section 3.1). What precedes the
// first ':' is taken for one only if it matches and holds no path
// separator, so "./a:b.db" stays a path.
var schemePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`)

// Open returns the backend that spec names. A spec without a scheme is the
// path of a SQLite file, so "--db ./b2bua.db" means "sqlite:./b2bua.db". A
// file whose name looks like "x:y" is given as "sqlite:x:y" or "./x:y".
func Open(ctx context.Context, spec string, opts Options) (Store, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("registry: no store given: the spec is a file path or one of %s", schemeList())
	}
	scheme, rest := "sqlite", spec
	if s, r, ok := strings.Cut(spec, ":"); ok && schemePattern.MatchString(s) {
		scheme, rest = strings.ToLower(s), r
	}
	open, ok := constructors[scheme]
	if !ok {
		return nil, fmt.Errorf("registry: %q: unknown store: the scheme must be one of %s (or give a file path)", spec, schemeList())
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return open(ctx, rest, opts)
}

// schemeList names the schemes as they are written in a spec: "sqlite:".
func schemeList() string {
	return strings.Join(Schemes(), ":, ") + ":"
}

func openSQLite(ctx context.Context, path string, opts Options) (Store, error) {
	if path == "" {
		return nil, errors.New("registry: sqlite: the spec must name a file, e.g. sqlite:./b2bua.db")
	}
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// openPostgres opens the cluster store; rest is the URI after "postgres:",
// so the URI is given to pgx whole.
func openPostgres(ctx context.Context, rest string, opts Options) (Store, error) {
	if !strings.HasPrefix(rest, "//") {
		return nil, errors.New("registry: postgres: the spec must be a connection URI, e.g. postgres://b2bua@db1/b2bua")
	}
	s, err := postgres.Open(ctx, postgres.Config{DSN: "postgres:" + rest, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return s, nil
}

var (
	_ Store = (*sqlite.Store)(nil)
	_ Store = (*postgres.Store)(nil)
)
