package registry

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNoDatabaseDriver: the packages that need only the registry's types
// (the SCP simulator and its command, the QR codec, the message policy,
// digest authentication) and the ones that program against its interfaces
// (the call core, the provisioning API, the media store) link no database
// driver; only registry/stores and what opens a store does. It reads the
// import graph from the go command, which is the linker's view of it.
func TestNoDatabaseDriver(t *testing.T) {
	const mod = "github.com/imcall/b2bua/"
	pkgs := []string{"registry", "cmd/scpsim", "scp/sim", "qrcard", "msgpolicy", "sip/digest", "sip", "provision", "mediastore"}
	banned := []string{"github.com/mattn/go-sqlite3", mod + "registry/sqlite", mod + "registry/stores"}

	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatal("the go command is needed to read the import graph:", err)
		}
	}
	args := []string{"list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`}
	for _, p := range pkgs {
		args = append(args, mod+p)
	}
	out, err := exec.Command(goBin, args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(pkgs) {
		t.Fatalf("go list gave %d packages, want %d:\n%s", len(lines), len(pkgs), out)
	}
	// The banned packages must exist, or the check proves nothing.
	if out, err := exec.Command(goBin, append([]string{"list"}, banned...)...).CombinedOutput(); err != nil {
		t.Fatalf("go list %v: %v\n%s", banned, err, out)
	}
	for _, l := range lines {
		fields := strings.Fields(l)
		for _, dep := range fields[1:] {
			for _, b := range banned {
				if dep == b {
					t.Errorf("%s links %s", fields[0], b)
				}
			}
		}
	}
}
