package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/imcall/b2bua/registry"
)

// Users, terminals and contacts: written by operators and the IM service,
// read per call.

// AddUser stores a new user. It returns ErrExists if the IM ID is taken.
func (s *Store) AddUser(ctx context.Context, u registry.User) (registry.User, error) {
	u, err := registry.ValidateUser(u)
	if err != nil {
		return registry.User{}, err
	}
	u.CreatedAt = now()
	_, err = s.pool.Exec(ctx,
		`INSERT INTO users (im_id, display, realm, ha1_md5, ha1_sha256, created) VALUES ($1, $2, $3, $4, $5, $6)`,
		u.IMID, u.Display, u.Creds.Realm, u.Creds.HA1MD5, u.Creds.HA1SHA256, nanos(u.CreatedAt))
	if isUnique(err) {
		return registry.User{}, fmt.Errorf("user %s: %w", u.IMID, registry.ErrExists)
	}
	if err != nil {
		return registry.User{}, wrapf(err, "add user %s", u.IMID)
	}
	return u, nil
}

const userCols = `im_id, display, realm, ha1_md5, ha1_sha256, created`

func scanUser(row pgx.Row) (registry.User, error) {
	var u registry.User
	var created int64
	if err := row.Scan(&u.IMID, &u.Display, &u.Creds.Realm, &u.Creds.HA1MD5, &u.Creds.HA1SHA256, &created); err != nil {
		return registry.User{}, err
	}
	u.CreatedAt = fromNanos(created)
	return u, nil
}

// User returns one user, or ErrNotFound.
func (s *Store) User(ctx context.Context, imID string) (registry.User, error) {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return registry.User{}, err
	}
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE im_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return registry.User{}, fmt.Errorf("user %s: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return registry.User{}, wrapf(err, "user %s", id)
	}
	return u, nil
}

// Users lists every user ordered by IM ID.
func (s *Store) Users(ctx context.Context) ([]registry.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY im_id COLLATE "C"`)
	if err != nil {
		return nil, wrapf(err, "list users")
	}
	out, err := collect(rows, scanUser)
	if err != nil {
		return nil, wrapf(err, "list users")
	}
	return out, nil
}

// collect reads every row with scan; the list is never nil.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// SetCredentials replaces a user's digest credentials.
func (s *Store) SetCredentials(ctx context.Context, imID string, c registry.Credentials) error {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return err
	}
	if c, err = registry.ValidateCredentials(c); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE users SET realm = $1, ha1_md5 = $2, ha1_sha256 = $3 WHERE im_id = $4`,
		c.Realm, c.HA1MD5, c.HA1SHA256, id)
	return affectedOne(tag, err, "user "+id)
}

// RemoveUser deletes a user with its terminals, contacts and bindings.
func (s *Store) RemoveUser(ctx context.Context, imID string) error {
	id, err := registry.ParseIMID(imID)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM users WHERE im_id = $1`, id)
	return affectedOne(tag, err, "user "+id)
}

const terminalCols = `id, im_id, mobile_type, mobile_value, kind, caps, active, created`

func scanTerminal(row pgx.Row) (registry.Terminal, error) {
	var t registry.Terminal
	var typ, kind string
	var caps int16
	var created int64
	if err := row.Scan(&t.ID, &t.IMID, &typ, &t.MobileID.Value, &kind, &caps, &t.Active, &created); err != nil {
		return registry.Terminal{}, err
	}
	t.MobileID.Type = registry.MobileIDType(typ)
	t.Kind = registry.Kind(kind)
	t.Caps = registry.Caps(caps)
	t.CreatedAt = fromNanos(created)
	return t, nil
}

// lockUser takes imID's row lock for the rest of tx: the writes that
// change which terminal is active queue on it, so that two nodes
// activating two terminals of one user at once both succeed in turn
// instead of one failing on terminals_one_active. It reports whether the
// user exists.
func lockUser(ctx context.Context, tx pgx.Tx, imID string) (bool, error) {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE im_id = $1 FOR UPDATE`, imID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// AddTerminal stores a new terminal. With t.Active it becomes the user's
// active terminal and the others are deactivated in the same transaction.
// It returns ErrNotFound for an unknown user and ErrExists if the mobile
// identity belongs to a terminal already.
func (s *Store) AddTerminal(ctx context.Context, t registry.NewTerminal) (registry.Terminal, error) {
	t, err := registry.ValidateTerminal(t)
	if err != nil {
		return registry.Terminal{}, err
	}
	var out registry.Terminal
	err = s.withTx(ctx, func(tx pgx.Tx) error {
		if t.Active {
			switch ok, err := lockUser(ctx, tx, t.IMID); {
			case err != nil:
				return err
			case !ok:
				return registry.ErrNotFound
			}
			if _, err := tx.Exec(ctx, `UPDATE terminals SET active = false WHERE im_id = $1 AND active`, t.IMID); err != nil {
				return err
			}
		}
		var err error
		out, err = scanTerminal(tx.QueryRow(ctx,
			`INSERT INTO terminals (im_id, mobile_type, mobile_value, kind, caps, active, created)
			 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+terminalCols,
			t.IMID, string(t.MobileID.Type), t.MobileID.Value, string(t.Kind), int16(t.Caps), t.Active, nanos(now())))
		return err
	})
	switch {
	case isUnique(err):
		return registry.Terminal{}, fmt.Errorf("terminal %s: %w", t.MobileID, registry.ErrExists)
	case isForeignKey(err), errors.Is(err, registry.ErrNotFound):
		return registry.Terminal{}, fmt.Errorf("user %s: %w", t.IMID, registry.ErrNotFound)
	case err != nil:
		return registry.Terminal{}, wrapf(err, "add terminal %s", t.MobileID)
	}
	return out, nil
}

// Terminal returns one terminal, or ErrNotFound.
func (s *Store) Terminal(ctx context.Context, id int64) (registry.Terminal, error) {
	t, err := scanTerminal(s.pool.QueryRow(ctx, `SELECT `+terminalCols+` FROM terminals WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return registry.Terminal{}, fmt.Errorf("terminal %d: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return registry.Terminal{}, wrapf(err, "terminal %d", id)
	}
	return t, nil
}

// Terminals lists the terminals of imID ordered by ID, or all terminals
// when imID is "". An unknown imID gives ErrNotFound.
func (s *Store) Terminals(ctx context.Context, imID string) ([]registry.Terminal, error) {
	q := `SELECT ` + terminalCols + ` FROM terminals ORDER BY id`
	var args []any
	if imID != "" {
		id, err := registry.ParseIMID(imID)
		if err != nil {
			return nil, err
		}
		switch ok, err := s.userExists(ctx, id); {
		case err != nil:
			return nil, wrapf(err, "list terminals of %s", id)
		case !ok:
			return nil, fmt.Errorf("user %s: %w", id, registry.ErrNotFound)
		}
		q = `SELECT ` + terminalCols + ` FROM terminals WHERE im_id = $1 ORDER BY id`
		args = append(args, id)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, wrapf(err, "list terminals")
	}
	out, err := collect(rows, scanTerminal)
	if err != nil {
		return nil, wrapf(err, "list terminals")
	}
	return out, nil
}

// Activate makes id its user's active terminal; the user's other terminals
// are deactivated in the same transaction. Activating the active terminal
// is not an error.
func (s *Store) Activate(ctx context.Context, id int64) (registry.Terminal, error) {
	var out registry.Terminal
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		var imID string
		if err := tx.QueryRow(ctx, `SELECT im_id FROM terminals WHERE id = $1`, id).Scan(&imID); err != nil {
			return err
		}
		if _, err := lockUser(ctx, tx, imID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE terminals SET active = false WHERE im_id = $1 AND active AND id <> $2`, imID, id); err != nil {
			return err
		}
		var err error
		out, err = scanTerminal(tx.QueryRow(ctx, `UPDATE terminals SET active = true WHERE id = $1 RETURNING `+terminalCols, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return registry.Terminal{}, fmt.Errorf("terminal %d: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return registry.Terminal{}, wrapf(err, "activate terminal %d", id)
	}
	return out, nil
}

// Deactivate clears id's active flag. Deactivating an inactive terminal is
// not an error.
func (s *Store) Deactivate(ctx context.Context, id int64) (registry.Terminal, error) {
	t, err := scanTerminal(s.pool.QueryRow(ctx, `UPDATE terminals SET active = false WHERE id = $1 RETURNING `+terminalCols, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return registry.Terminal{}, fmt.Errorf("terminal %d: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return registry.Terminal{}, wrapf(err, "deactivate terminal %d", id)
	}
	return t, nil
}

// RemoveTerminal deletes a terminal and its bindings.
func (s *Store) RemoveTerminal(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM terminals WHERE id = $1`, id)
	return affectedOne(tag, err, fmt.Sprintf("terminal %d", id))
}

// ActiveTerminal returns imID's active terminal: ErrNotFound for an unknown
// user, ErrNoActiveTerminal for a user with none. Answers come from a cache
// that every node's committed change invalidates (see activeCache).
func (s *Store) ActiveTerminal(ctx context.Context, imID string) (registry.Terminal, error) {
	return s.cache.get(ctx, imID)
}

// activeQuery tells an unknown user (no row) from a user without an active
// terminal (a row of NULLs) in one query, served by terminals_one_active.
const activeQuery = `SELECT t.id, t.mobile_type, t.mobile_value, t.kind, t.caps, t.created
FROM users u LEFT JOIN terminals t ON t.im_id = u.im_id AND t.active
WHERE u.im_id = $1`

// queryActive reads id's active terminal from the database.
func (s *Store) queryActive(ctx context.Context, id string) (registry.Terminal, error) {
	var (
		tid          *int64
		typ, val, kd *string
		caps         *int16
		created      *int64
	)
	err := s.pool.QueryRow(ctx, activeQuery, id).Scan(&tid, &typ, &val, &kd, &caps, &created)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return registry.Terminal{}, fmt.Errorf("user %s: %w", id, registry.ErrNotFound)
	case err != nil:
		return registry.Terminal{}, wrapf(err, "active terminal of %s", id)
	case tid == nil:
		return registry.Terminal{}, fmt.Errorf("user %s: %w", id, registry.ErrNoActiveTerminal)
	}
	return registry.Terminal{ID: *tid, IMID: id, MobileID: registry.MobileID{Type: registry.MobileIDType(*typ), Value: *val},
		Kind: registry.Kind(*kd), Caps: registry.Caps(*caps), Active: true, CreatedAt: fromNanos(*created)}, nil
}

const contactCols = `id, owner, im_id, domain, mobile_type, mobile_value, display, created`

func scanContact(row pgx.Row) (registry.Contact, error) {
	var c registry.Contact
	var typ string
	var created int64
	if err := row.Scan(&c.ID, &c.Owner, &c.IMID, &c.Domain, &typ, &c.MobileID.Value, &c.Display, &created); err != nil {
		return registry.Contact{}, err
	}
	c.MobileID.Type = registry.MobileIDType(typ)
	c.CreatedAt = fromNanos(created)
	return c, nil
}

// AddContact stores an entry in c.Owner's address book. The same entry
// twice gives ErrExists; an unknown owner gives ErrNotFound.
func (s *Store) AddContact(ctx context.Context, c registry.Contact) (registry.Contact, error) {
	c, err := registry.ValidateContact(c)
	if err != nil {
		return registry.Contact{}, err
	}
	out, err := scanContact(s.pool.QueryRow(ctx,
		`INSERT INTO contacts (owner, im_id, domain, mobile_type, mobile_value, display, created)
		 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+contactCols,
		c.Owner, c.IMID, c.Domain, string(c.MobileID.Type), c.MobileID.Value, c.Display, nanos(now())))
	switch {
	case isUnique(err):
		return registry.Contact{}, fmt.Errorf("contact %s of %s: %w", c.IMID, c.Owner, registry.ErrExists)
	case isForeignKey(err):
		return registry.Contact{}, fmt.Errorf("user %s: %w", c.Owner, registry.ErrNotFound)
	case err != nil:
		return registry.Contact{}, wrapf(err, "add contact %s of %s", c.IMID, c.Owner)
	}
	return out, nil
}

// Contacts lists owner's address book ordered by ID. An unknown owner gives
// ErrNotFound.
func (s *Store) Contacts(ctx context.Context, owner string) ([]registry.Contact, error) {
	id, err := registry.ParseIMID(owner)
	if err != nil {
		var ve *registry.ValidationError
		if errors.As(err, &ve) {
			return nil, &registry.ValidationError{Field: "owner", Rule: ve.Rule}
		}
		return nil, err
	}
	switch ok, err := s.userExists(ctx, id); {
	case err != nil:
		return nil, wrapf(err, "list contacts of %s", id)
	case !ok:
		return nil, fmt.Errorf("user %s: %w", id, registry.ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+contactCols+` FROM contacts WHERE owner = $1 ORDER BY id`, id)
	if err != nil {
		return nil, wrapf(err, "list contacts of %s", id)
	}
	out, err := collect(rows, scanContact)
	if err != nil {
		return nil, wrapf(err, "list contacts of %s", id)
	}
	return out, nil
}

var _ registry.Store = (*Store)(nil)
