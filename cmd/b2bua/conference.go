package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/imcall/b2bua/conference"
	"github.com/imcall/b2bua/registry"
	"github.com/spf13/cobra"
)

// apiClient reaches the running serve's HTTP API: conferences live in that
// process, not in the registry, so these commands cannot work on the
// database directly as the user and terminal commands do.
type apiClient struct {
	root      *rootOptions
	addr      string // --api, host:port or a base URL
	tokenFile string // --api-token-file
}

func (c *apiClient) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&c.addr, "api", envOr("B2BUA_API", "127.0.0.1:8080"), "HTTP address of the running 'b2bua serve', host:port or a base URL (env B2BUA_API)")
	f.StringVar(&c.tokenFile, "api-token-file", envOr("B2BUA_API_TOKEN_FILE", ""), "file holding the provisioning API token; B2BUA_API_TOKEN gives it directly (default: b2bua.token beside --db, as serve writes it) (env B2BUA_API_TOKEN_FILE)")
}

func (c *apiClient) base() string {
	if strings.Contains(c.addr, "://") {
		return strings.TrimRight(c.addr, "/")
	}
	return "http://" + c.addr
}

// token finds the API token where serve takes it from: B2BUA_API_TOKEN,
// else the token file, by default b2bua.token beside the SQLite file.
func (c *apiClient) token() (string, error) {
	if t := os.Getenv("B2BUA_API_TOKEN"); t != "" {
		return t, nil
	}
	path := c.tokenFile
	if path == "" {
		db := strings.TrimPrefix(c.root.DBPath, "sqlite:")
		if strings.Contains(db, "://") {
			return "", &registry.ValidationError{Field: "api-token-file", Rule: "is required when the registry is not a file (or set B2BUA_API_TOKEN)"}
		}
		path = filepath.Join(filepath.Dir(db), "b2bua.token")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("api token: %w (is 'b2bua serve' running with this --db?)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// do sends one request and decodes a success into out; an error answer
// becomes an error with the API's message.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	tok, err := c.token()
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base()+path, rd)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("api %s: %w", c.base(), err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if res.StatusCode >= 300 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return errors.New(e.Error.Message)
		}
		return fmt.Errorf("api: %s", res.Status)
	}
	if out == nil || res.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("api: answer: %w", err)
	}
	return nil
}

func newConferenceCmd(root *rootOptions) *cobra.Command {
	c := &apiClient{root: root}
	cmd := &cobra.Command{
		Use:   "conference",
		Short: "Create and run conferences on the running 'b2bua serve' (over its HTTP API)",
	}
	c.register(cmd)
	cmd.AddCommand(confCreateCmd(c), confListCmd(c), confShowCmd(c), confAddCmd(c),
		confActCmd(c, "mute", "Stop mixing a participant's audio (it still hears the others)"),
		confActCmd(c, "unmute", "Mix a muted participant's audio again"),
		confActCmd(c, "kick", "Hang up a participant's call (it stays listed as disconnected)"),
		confEndCmd(c))
	return cmd
}

func confPath(id string, rest ...string) string {
	p := conference.APIPrefix + "/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

func confCreateCmd(c *apiClient) *cobra.Command {
	var owner string
	var dial []string
	cmd := &cobra.Command{
		Use:   "create --owner IMID [--dial ID|+E164 ...]",
		Short: "Create a conference and dial its participants",
		Args:  args(),
	}
	cmd.Flags().StringVar(&owner, "owner", "", "IM ID of the owner (required)")
	cmd.Flags().StringArrayVar(&dial, "dial", nil, "participant to dial out to: an IM ID or a +E.164 number (repeatable)")
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		out, err := output()
		if err != nil {
			return err
		}
		if err := requireFlag(cmd, "owner"); err != nil {
			return err
		}
		var res conference.CreatedResponse
		if err := c.do(cmd.Context(), "POST", conference.APIPrefix, conference.CreateRequest{Owner: owner, Dial: dial}, &res); err != nil {
			return err
		}
		if out == "json" {
			return writeJSON(cmd.OutOrStdout(), res)
		}
		w := cmd.OutOrStdout()
		fmt.Fprintf(w, "conference %s\nuri:  %s\nlink: %s\n", res.ID, res.URI, dash(res.Link))
		return participantTable(w, res.Participants)
	}
	return cmd
}

func confListCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List the conferences", Args: args()}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		out, err := output()
		if err != nil {
			return err
		}
		var res struct {
			Conferences []conference.Snapshot `json:"conferences"`
		}
		if err := c.do(cmd.Context(), "GET", conference.APIPrefix, nil, &res); err != nil {
			return err
		}
		if out == "json" {
			return writeJSON(cmd.OutOrStdout(), res)
		}
		rows := make([][]string, 0, len(res.Conferences))
		for _, s := range res.Conferences {
			live := 0
			for _, p := range s.Participants {
				if p.Status == conference.StatusConnected {
					live++
				}
			}
			rows = append(rows, []string{s.ID, s.Owner, strconv.Itoa(len(s.Participants)), strconv.Itoa(live), s.URI})
		}
		return table(cmd.OutOrStdout(), []string{"ID", "OWNER", "PARTICIPANTS", "CONNECTED", "URI"}, rows)
	}
	return cmd
}

func confShowCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "show ID", Short: "Show a conference and its participants", Args: args("ID")}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		out, err := output()
		if err != nil {
			return err
		}
		var s conference.Snapshot
		if err := c.do(cmd.Context(), "GET", confPath(a[0]), nil, &s); err != nil {
			return err
		}
		return showSnapshot(cmd.OutOrStdout(), out, s)
	}
	return cmd
}

func confEndCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "end ID", Short: "Hang up every participant and end the conference", Args: args("ID")}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		out, err := output()
		if err != nil {
			return err
		}
		var s conference.Snapshot
		if err := c.do(cmd.Context(), "DELETE", confPath(a[0]), nil, &s); err != nil {
			return err
		}
		return showSnapshot(cmd.OutOrStdout(), out, s)
	}
	return cmd
}

func confAddCmd(c *apiClient) *cobra.Command {
	var display string
	cmd := &cobra.Command{Use: "add ID PARTICIPANT", Short: "Dial out to a participant (an IM ID or a +E.164 number)", Args: args("ID", "PARTICIPANT")}
	cmd.Flags().StringVar(&display, "display", "", "display name shown to the others")
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		out, err := output()
		if err != nil {
			return err
		}
		if _, err := conference.ParseTarget(a[1]); err != nil {
			return err
		}
		var p conference.Participant
		if err := c.do(cmd.Context(), "POST", confPath(a[0], "participants"), conference.AddRequest{Target: a[1], Display: display}, &p); err != nil {
			return err
		}
		return showParticipant(cmd.OutOrStdout(), out, p)
	}
	return cmd
}

func confActCmd(c *apiClient, action, short string) *cobra.Command {
	cmd := &cobra.Command{Use: action + " ID PARTICIPANT", Short: short + "; PARTICIPANT is its ID (see show)", Args: args("ID", "PARTICIPANT")}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		out, err := output()
		if err != nil {
			return err
		}
		var p conference.Participant
		// The API takes a JSON body on actions (the pages' CSRF guard).
		if err := c.do(cmd.Context(), "POST", confPath(a[0], "participants", a[1], action), struct{}{}, &p); err != nil {
			return err
		}
		return showParticipant(cmd.OutOrStdout(), out, p)
	}
	return cmd
}

func showSnapshot(w io.Writer, out string, s conference.Snapshot) error {
	if out == "json" {
		return writeJSON(w, s)
	}
	state := "live"
	if s.Ended {
		state = "ended"
	}
	fmt.Fprintf(w, "conference %s (%s), owner %s, version %d\nuri: %s\n", s.ID, state, s.Owner, s.Version, s.URI)
	return participantTable(w, s.Participants)
}

func showParticipant(w io.Writer, out string, p conference.Participant) error {
	if out == "json" {
		return writeJSON(w, p)
	}
	return participantTable(w, []conference.Participant{p})
}

func participantTable(w io.Writer, ps []conference.Participant) error {
	if len(ps) == 0 {
		return nil
	}
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		muted, ended := "no", ""
		if p.Muted {
			muted = "yes"
		}
		if e := p.Ended; e != nil {
			ended = string(e.Method)
			if e.SIPCode != 0 {
				ended += " " + strconv.Itoa(e.SIPCode)
			}
			if e.Q850 != 0 {
				ended += " cause " + strconv.Itoa(e.Q850)
			}
			if e.Reason != "" {
				ended += ": " + e.Reason
			}
		}
		rows = append(rows, []string{p.ID, p.Target, string(p.Status), muted, dash(ended)})
	}
	return table(w, []string{"PARTICIPANT", "TARGET", "STATUS", "MUTED", "ENDED"}, rows)
}
