// Package storetest is the conformance suite of the registry's stores: the
// contract of registry.Store, SignalStore, MediaStore, NumberStore,
// CallStore, the dialog snapshots and the leases, written once and run
// against every backend (registry/sqlite, registry/postgres) from that
// backend's tests. Rules that the database itself must hold (one active
// terminal per user, one owner per number) are checked by writing around
// the store's code through RawDB, as a second program would.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/imcall/b2bua/registry"
)

// Store is what a backend under test offers.
type Store interface {
	registry.Store
	registry.SignalStore
	registry.MediaStore
	registry.NumberStore
	registry.CallStore
	registry.LeaseStore
	LiveBindings(ctx context.Context, now time.Time, limit int) ([]registry.Binding, int, error)
	Ping(ctx context.Context) error
	WriteCalls(ctx context.Context, recs []registry.CallRecord) (errs []error, err error)
	PutDialogs(ctx context.Context, put []registry.DialogSnapshot, gone []registry.DialogKey) error
	Dialogs(ctx context.Context, node string) ([]registry.DialogSnapshot, error)
	EndLeftover(ctx context.Context, d registry.DialogSnapshot, endedAt time.Time, cause string) error
}

// RawDB is the database under a store, reached around the store's code.
// Statements are written with ? placeholders and portable SQL.
type RawDB interface {
	Exec(ctx context.Context, query string, args ...any) error
	// Int runs a query giving one integer.
	Int(ctx context.Context, query string, args ...any) (int, error)
	// IsUnique reports whether err is a unique constraint's refusal.
	IsUnique(err error) bool
}

// Harness opens stores of one backend.
type Harness struct {
	// Open gives a new, empty store, closed when t ends.
	Open func(t *testing.T) Store
	// Raw gives the database of a store Open gave.
	Raw func(t *testing.T, s Store) RawDB
	// Peer opens another store on s's database, as a second node (or a
	// second process) uses it; closed when t ends.
	Peer func(t *testing.T, s Store) Store
}

func (h Harness) open(t *testing.T) Store { t.Helper(); return h.Open(t) }

// Run runs the whole suite, one subtest per behaviour.
func Run(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, Harness)
	}{
		{"Users", testUsers},
		{"NewCredentials", testNewCredentials},
		{"TerminalsAndActive", testTerminalsAndActive},
		{"OneActiveEnforcedByDatabase", testOneActiveEnforcedByDatabase},
		{"Contacts", testContacts},
		{"DialogSnapshots", testDialogSnapshots},
		{"EndLeftover", testEndLeftover},
		{"Trunks", testTrunks},
		{"DIDs", testDIDs},
		{"DIDOneOwnerInDatabase", testDIDOneOwnerInDatabase},
		{"BindingsByInstance", testBindingsByInstance},
		{"MediaStoreLifecycle", testMediaStoreLifecycle},
		{"PendingMessages", testPendingMessages},
		{"Bindings", testBindings},
		{"LiveBindings", testLiveBindings},
		{"CallRecords", testCallRecords},
		{"WriteCalls", testWriteCalls},
		{"ListCalls", testListCalls},
		{"Leases", testLeases},
		{"ActivateRace", testActivateRace},
		{"ActiveSeenByPeer", testActiveSeenByPeer},
		{"HurryPending", testHurryPending},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, h) })
	}
}
