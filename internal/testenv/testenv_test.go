package testenv

import "testing"

func TestCI(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"", false}, {"true", true}, {"TRUE", true}, {"1", true}, {"yes", true}, {"Yes", true},
		{"false", false}, {"0", false}, {"no", false}, {"maybe", false},
	} {
		t.Setenv("CI", tc.v)
		if got := CI(); got != tc.want {
			t.Errorf("CI=%q: CI() = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// recorder captures whether Missing skipped or failed.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Skipf(string, ...any)  { r.skipped = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		ci           string
		skip, failed bool
	}{{"", true, false}, {"false", true, false}, {"true", false, true}, {"yes", false, true}} {
		t.Setenv("CI", tc.ci)
		r := &recorder{TB: t}
		NeedTool(r, "no-such-program-b2bua-test")
		if r.skipped != tc.skip || r.failed != tc.failed {
			t.Errorf("CI=%q: skipped %v failed %v, want %v %v", tc.ci, r.skipped, r.failed, tc.skip, tc.failed)
		}
	}
}
