package daemon

import (
	"slices"
	"testing"
)

func TestServerHosts(t *testing.T) {
	if got := serverHosts("127.0.0.1:5060", "", "[::1]:5061", "sip.example:5060"); !slices.Equal(got, []string{"127.0.0.1", "::1", "sip.example"}) {
		t.Errorf("serverHosts = %q", got)
	}
	if got := serverHosts("0.0.0.0:5060"); !slices.Contains(got, "127.0.0.1") {
		t.Errorf("serverHosts(0.0.0.0) = %q, want the machine's addresses with 127.0.0.1", got)
	}
}
