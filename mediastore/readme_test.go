package mediastore_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imcall/b2bua/daemon"
	"github.com/imcall/b2bua/internal/testenv"
	"github.com/imcall/b2bua/mediastore"
)

// readmeExamples returns the ```sh blocks of the README section "title"
// and the ```text block after each, if any.
func readmeExamples(t *testing.T, title string) (scripts, wants []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	in, fenced, info := false, false, ""
	var body []string
	for _, l := range strings.Split(string(b), "\n") {
		if !fenced && strings.HasPrefix(l, "## ") {
			in = l == "## "+title
			continue
		}
		if !in {
			continue
		}
		if strings.HasPrefix(l, "```") {
			if !fenced {
				fenced, info, body = true, strings.TrimPrefix(l, "```"), nil
				continue
			}
			fenced = false
			text := strings.Join(body, "\n") + "\n"
			switch info {
			case "sh":
				scripts, wants = append(scripts, text), append(wants, "")
			case "text":
				if len(wants) > 0 {
					wants[len(wants)-1] = text
				}
			}
			continue
		}
		if fenced {
			body = append(body, l)
		}
	}
	return scripts, wants
}

// TestREADMEMediaExamples runs the examples of "Messages and media links"
// against a running daemon: $LINK is the link of an image stored as
// store-and-link stores it, sent.png the bytes the sender sent.
func TestREADMEMediaExamples(t *testing.T) {
	testenv.NeedTool(t, "curl")
	dir := t.TempDir()
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Config{DBPath: filepath.Join(dir, "b2bua.db"), Domain: "im.example",
		SIPListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ms, err := mediastore.New(mediastore.Config{DB: d.Store()})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	img := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte("readme"), 100)...)
	st, err := ms.Put(ctx, mediastore.Item{Owner: "bob", Sender: "alice", ContentType: "image/png", Data: img})
	if err != nil {
		t.Fatal(err)
	}
	link := mediastore.Link("http://"+d.HTTPAddr(), st.Token)
	if err := os.WriteFile(filepath.Join(dir, "sent.png"), img, 0o600); err != nil {
		t.Fatal(err)
	}

	scripts, wants := readmeExamples(t, "Messages and media links")
	if len(scripts) == 0 {
		t.Fatal("no examples found in the README section")
	}
	for i, script := range scripts {
		script = strings.ReplaceAll(script, "127.0.0.1:8080", d.HTTPAddr())
		cmd := exec.Command("bash", "-e", "-o", "pipefail", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LINK="+link)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("example %d: %v\n%s\nstderr: %s", i+1, err, script, stderr.String())
		}
		if stdout.String() != wants[i] {
			t.Errorf("example %d output:\n%s\nREADME shows:\n%s", i+1, stdout.String(), wants[i])
		}
	}
}
