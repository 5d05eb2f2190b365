// Package pgtest runs a throwaway PostgreSQL server for tests: initdb and
// pg_ctl from the Debian postgresql package (or PATH) in a temporary
// directory, listening on a Unix socket only, so that no port is picked
// and nothing outside the directory is touched. Run as root (as CI is),
// the server runs as the postgres user, or nobody, since PostgreSQL
// refuses to run as root.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imcall/b2bua/internal/testenv"
)

// ErrNoServer: no PostgreSQL server binaries on this machine.
var ErrNoServer = errors.New("PostgreSQL server not installed (apt-get install postgresql)")

// Server is one running PostgreSQL cluster.
type Server struct {
	dir  string // owns data/, sock/ and log/
	bin  string // directory of initdb and pg_ctl
	cred *syscall.Credential
	mu   sync.Mutex
	n    int // databases made
}

// binDir finds initdb: the newest /usr/lib/postgresql/*/bin, else PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoServer
}

func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// credential is who the server runs as: ourselves unless we are root.
func credential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
	}
	return nil, 0, 0, errors.New("running as root and no postgres or nobody user to run the server as")
}

// Start initialises and starts a cluster in a new temporary directory.
func Start(ctx context.Context) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, cred: cred}
	for _, sub := range []string{"data", "sock", "log"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, errors.Join(err, os.RemoveAll(dir))
		}
	}
	if cred != nil {
		// The server's user must reach its directories; the temporary
		// directory is ours and mode 0700.
		err := errors.Join(os.Chmod(dir, 0o755),
			os.Chown(filepath.Join(dir, "data"), uid, gid), os.Chown(filepath.Join(dir, "sock"), uid, gid),
			os.Chown(filepath.Join(dir, "log"), uid, gid))
		if err != nil {
			return nil, errors.Join(err, os.RemoveAll(dir))
		}
	}
	if err := s.run(ctx, "initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	if err := s.Resume(ctx); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	return s, nil
}

// Resume starts the server: after initdb, or again after Halt.
func (s *Server) Resume(ctx context.Context) error {
	// Durability is not under test: fsync off makes CREATE DATABASE and
	// commits cheap on a shared machine.
	opts := fmt.Sprintf("-c listen_addresses='' -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", s.SocketDir())
	if err := s.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", s.data(), "-l", s.logFile(), "-o", opts); err != nil {
		log, _ := os.ReadFile(s.logFile())
		return fmt.Errorf("%w\nserver log:\n%s", err, log)
	}
	return nil
}

// Halt stops the server as an operator's fast shutdown does (sessions
// ended, data kept), for a test of what clients do without it; Resume
// starts it again.
func (s *Server) Halt(ctx context.Context) error {
	return s.run(ctx, "pg_ctl", "stop", "-m", "fast", "-w", "-D", s.data())
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) logFile() string { return filepath.Join(s.dir, "log", "server.log") }

// SocketDir is the directory of the server's Unix socket.
func (s *Server) SocketDir() string { return filepath.Join(s.dir, "sock") }

func (s *Server) run(ctx context.Context, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, prog), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, out)
	}
	return nil
}

// DSN is the connection URI of database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&sslmode=disable", db, s.SocketDir())
}

// CreateDB makes a new, empty database and returns its name.
func (s *Server) CreateDB(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("t%d", s.n)
	s.mu.Unlock()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return name, nil
}

// DropDB drops database name, ending its sessions.
func (s *Server) DropDB(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	return err
}

// Stop stops the server at once and removes its directory.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.run(ctx, "pg_ctl", "stop", "-m", "immediate", "-w", "-D", s.data())
	return errors.Join(err, os.RemoveAll(s.dir))
}

// Shared is a server started on first use by one test binary and stopped
// by its TestMain (Close).
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Server returns the shared server, starting it on first use; where
// PostgreSQL is missing the test is skipped, or failed under CI.
func (sh *Shared) Server(t testing.TB) *Server {
	t.Helper()
	sh.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sh.srv, sh.err = Start(ctx)
	})
	if errors.Is(sh.err, ErrNoServer) {
		testenv.Missing(t, "%v", sh.err)
	}
	if sh.err != nil {
		t.Fatalf("start PostgreSQL: %v", sh.err)
	}
	return sh.srv
}

// DB makes a new database on the shared server, dropped when t ends, and
// returns its connection URI.
func (sh *Shared) DB(t testing.TB) string {
	t.Helper()
	srv := sh.Server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, err := srv.CreateDB(ctx)
	if err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.DropDB(ctx, name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return srv.DSN(name)
}

// Close stops the shared server if it was started.
func (sh *Shared) Close() error {
	if sh.srv == nil {
		return nil
	}
	return sh.srv.Stop()
}
