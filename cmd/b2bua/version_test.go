package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: `b2bua version` names the release the binary was linked
// with and the Go toolchain; --json says the same as GET /version. Without
// a release it says (devel).
func TestVersion(t *testing.T) {
	db := newDB(t)
	if out := ok(t, db, "", "version"); !strings.HasPrefix(out, "b2bua (devel) ") || !strings.HasSuffix(strings.TrimSpace(out), runtime.Version()) {
		t.Errorf("version = %q, want b2bua (devel) ... %s", out, runtime.Version())
	}
	bin := filepath.Join(t.TempDir(), "b2bua")
	build := exec.Command("go", "build", "-ldflags", "-X github.com/imcall/b2bua/daemon.release=v9.8.7", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return string(out)
	}
	if out := run("version"); !strings.HasPrefix(out, "b2bua v9.8.7 ") {
		t.Errorf("version = %q, want b2bua v9.8.7 ...", out)
	}
	var v struct{ Version, Go string }
	if err := json.Unmarshal([]byte(run("version", "--json")), &v); err != nil || v.Version != "v9.8.7" || v.Go != runtime.Version() {
		t.Errorf("version --json = %+v, %v", v, err)
	}
}
