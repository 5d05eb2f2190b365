package daemon

import (
	"encoding/json"
	"net/http"
	"runtime/debug"
)

// Version says which build runs, from what the Go toolchain records in
// the binary (module version and VCS stamp of `go build` in a checkout).
type Version struct {
	Version  string `json:"version"`            // module version, "(devel)" for a checkout build
	Revision string `json:"revision,omitempty"` // VCS commit
	Time     string `json:"time,omitempty"`     // commit time, RFC 3339
	Modified bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Go       string `json:"go"`                 // toolchain
}

// release is the version a release build names, set at link time:
//
//	go build -ldflags "-X github.com/imcall/b2bua/daemon.release=v1.2.0" ./cmd/b2bua
//
// Empty: the module version (go install pkg@version), or "(devel)".
var release string

// BuildVersion reads the running binary's build information. The commit
// is known when the build stamped it: `go build` in a git checkout (not a
// git worktree, which the go command does not recognise) without
// -buildvcs=false.
func BuildVersion() Version {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Version{Version: "unknown"}
	}
	v := Version{Version: bi.Main.Version, Go: bi.GoVersion}
	if release != "" {
		v.Version = release
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

// String is the version on one line, as `b2bua version` prints it.
func (v Version) String() string {
	s := "b2bua " + v.Version
	if v.Revision != "" {
		s += " " + v.Revision
		if v.Modified {
			s += "+modified"
		}
	}
	if v.Time != "" {
		s += " " + v.Time
	}
	return s + " " + v.Go
}

// serveVersion answers GET /version with the build as JSON, without a
// token: it is what an operator checks first after an upgrade.
func serveVersion(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(BuildVersion())
}
