package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/imcall/b2bua/registry"
)

// Tests that need a second process re-execute this test binary: the child
// runs TestChildProcess with childEnv naming what to do.
const childEnv = "REGISTRY_TEST_CHILD"

func childCmd(t *testing.T, mode, db string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "REGISTRY_TEST_DB="+db, "REGISTRY_TEST_ARGS="+strings.Join(args, ","))
	cmd.Stderr = os.Stderr
	return cmd
}

// TestChildProcess is not a test: it is the body of the child processes
// started by the tests below, and returns at once otherwise.
func TestChildProcess(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		return
	}
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: os.Getenv("REGISTRY_TEST_DB")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var ids []int64
	for _, a := range strings.Split(os.Getenv("REGISTRY_TEST_ARGS"), ",") {
		if a != "" {
			id, _ := strconv.ParseInt(a, 10, 64)
			ids = append(ids, id)
		}
	}
	switch mode {
	case "activate": // activate each ID once, in order
		for _, id := range ids {
			if _, err := s.Activate(ctx, id); err != nil {
				fmt.Fprintln(os.Stderr, "child:", err)
				os.Exit(2)
			}
		}
	case "activate-loop": // ids[0] = rounds; activate the others in turn
		for i := 0; i < int(ids[0]); i++ {
			if _, err := s.Activate(ctx, ids[1+i%(len(ids)-1)]); err != nil {
				fmt.Fprintln(os.Stderr, "child:", err)
				os.Exit(2)
			}
		}
	case "write-loop": // add terminals until killed, reporting each commit
		out := bufio.NewWriter(os.Stdout)
		for i := 0; ; i++ {
			term, err := s.AddTerminal(ctx, registry.NewTerminal{IMID: "alice",
				MobileID: registry.MobileID{Type: registry.IMSI, Value: fmt.Sprintf("00101%010d", i)}, Active: i%2 == 0})
			if err != nil {
				fmt.Fprintln(os.Stderr, "child:", err)
				os.Exit(2)
			}
			// Printed only after AddTerminal returned, i.e. after COMMIT.
			fmt.Fprintf(out, "committed %d\n", term.ID)
			out.Flush()
		}
	}
	s.Close()
	os.Exit(0)
}

func runChild(t *testing.T, mode, db string, args ...int64) {
	t.Helper()
	var ss []string
	for _, a := range args {
		ss = append(ss, strconv.FormatInt(a, 10))
	}
	cmd := childCmd(t, mode, db, ss...)
	cmd.Stderr = nil
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child %s: %v\n%s", mode, err, out)
	}
}

// TestCacheSeesOtherProcessWrites: the daemon caches ActiveTerminal; the CLI
// (another process) changes the active terminal; the daemon's next lookup
// must see it.
func TestCacheSeesOtherProcessWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openTest(t, path)
	noVerify(t, s)
	mustUser(t, s, "alice")
	t1 := mustTerminal(t, s, "alice", "imsi:001010000000001", true)
	t2 := mustTerminal(t, s, "alice", "imsi:001010000000002", false)

	for i, want := range []registry.Terminal{t2, t1, t2} {
		prev, err := s.ActiveTerminal(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ActiveTerminal(ctx, "alice"); got != prev || len(s.cache.entries) != 1 {
			t.Fatalf("round %d: lookup not served from the cache", i)
		}
		runChild(t, "activate", path, want.ID)
		got, err := s.ActiveTerminal(ctx, "alice")
		if err != nil || got.ID != want.ID {
			t.Fatalf("round %d: after another process activated %d, ActiveTerminal = %d, %v", i, want.ID, got.ID, err)
		}
	}

	// And the other way round: removing the user elsewhere is seen too.
	other := openTest(t, path)
	if err := other.RemoveUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ActiveTerminal(ctx, "alice"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("after another handle removed the user: err = %v, want ErrNotFound", err)
	}
}

// TestActivateRace: two processes and two handles in this one activate
// different terminals of one user as fast as they can while a reader
// checks that there is never more (or less) than one active terminal.
func TestActivateRace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openTest(t, path)
	s2 := openTest(t, path)
	mustUser(t, s, "alice")
	var ids []int64
	for i := range 4 {
		ids = append(ids, mustTerminal(t, s, "alice", fmt.Sprintf("imsi:00101000000000%d", i), i == 0).ID)
	}
	const rounds = 150

	child := childCmd(t, "activate-loop", path, strconv.Itoa(rounds), strconv.FormatInt(ids[2], 10), strconv.FormatInt(ids[3], 10))
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w, h := range []*Store{s, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if _, err := h.Activate(ctx, ids[(w+i)%2]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int
			if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM terminals WHERE im_id = 'alice' AND active`).Scan(&n); err != nil {
				errs <- err
				return
			}
			if n != 1 {
				errs <- fmt.Errorf("reader saw %d active terminals", n)
				return
			}
			if _, err := s2.ActiveTerminal(ctx, "alice"); err != nil {
				errs <- fmt.Errorf("ActiveTerminal during the race: %w", err)
				return
			}
		}
	}()
	wg.Wait()
	if err := child.Wait(); err != nil {
		t.Errorf("child: %v", err)
	}
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if active := activeIDs(t, s, "alice"); len(active) != 1 {
		t.Fatalf("after the race: active terminals %v, want exactly one", active)
	}
	got, err := s.ActiveTerminal(ctx, "alice")
	if err != nil || got.ID != activeIDs(t, s, "alice")[0] {
		t.Errorf("ActiveTerminal = %d, %v; want the one active terminal", got.ID, err)
	}
}

// TestDurabilityAfterSIGKILL: a child adds terminals in a loop and reports
// each commit; it is killed mid-stream. Every reported terminal must be in
// the file, and the file must be intact.
func TestDurabilityAfterSIGKILL(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openTest(t, path)
	mustUser(t, s, "alice")

	child := childCmd(t, "write-loop", path)
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var reported []int64
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		idText, ok := strings.CutPrefix(sc.Text(), "committed ")
		if !ok {
			continue
		}
		id, err := strconv.ParseInt(idText, 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		reported = append(reported, id)
		// Kill while the child is mid-stream, not at a chosen point: it
		// is writing continuously, so the signal lands inside some
		// transaction or other.
		if len(reported) == 200 && !killed {
			if err := child.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = child.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed: %v", err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child exit: %v, want killed by SIGKILL", err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path)
	var check string
	if err := s.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	var fkRows int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM pragma_foreign_key_check").Scan(&fkRows); err != nil || fkRows != 0 {
		t.Errorf("foreign_key_check: %d rows, %v", fkRows, err)
	}
	for _, id := range reported {
		if _, err := s.Terminal(ctx, id); err != nil {
			t.Errorf("terminal %d was reported committed: %v", id, err)
		}
	}
	if active := activeIDs(t, s, "alice"); len(active) > 1 {
		t.Errorf("active terminals after the crash: %v", active)
	}
	t.Logf("%d commits reported before SIGKILL, all present", len(reported))
}
