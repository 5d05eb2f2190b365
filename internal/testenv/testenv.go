// Package testenv decides what a test does when the machine lacks something
// it needs (a program such as SIPp or tshark, a file, a second loopback
// address): skip on a developer's machine, fail under CI, where .ci/run
// installs everything, so that a CI run never passes having run less.
package testenv

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// CI reports whether the tests run under continuous integration: the
// environment variable CI holds a true value (as strconv.ParseBool reads
// it, or "yes").
func CI() bool {
	v := strings.TrimSpace(os.Getenv("CI"))
	if strings.EqualFold(v, "yes") {
		return true
	}
	b, _ := strconv.ParseBool(v)
	return b
}

// Missing skips t for the reason given, or fails it under CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("required under CI: "+format, args...)
		return
	}
	t.Skipf(format, args...)
}

// debPackage names the Debian package of a program where it differs.
var debPackage = map[string]string{"sipp": "sip-tester", "chromedriver": "chromium-driver"}

// NeedTool returns the path of the program name, or calls Missing.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		pkg := debPackage[name]
		if pkg == "" {
			pkg = name
		}
		Missing(t, "%s not installed (apt-get install %s): %v", name, pkg, err)
	}
	return p
}

// NeedFile calls Missing when path does not exist; what says what it is.
func NeedFile(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, "%s missing: %v", what, err)
	}
}
