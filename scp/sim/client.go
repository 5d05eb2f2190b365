package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/imcall/b2bua/registry"
	"github.com/imcall/b2bua/scp"
)

// Client drives a running simulator over its admin routes: it is what
// `scpsim subscriber ...` uses, against scpsim itself or against a b2bua
// that runs the simulator in process.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client for the simulator at baseURL (e.g.
// http://127.0.0.1:8070). A nil hc uses http.DefaultClient.
func NewClient(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &registry.ValidationError{Field: "server", Rule: "must be an http:// or https:// URL such as http://127.0.0.1:8070"}
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(u.String(), "/"), hc: hc}, nil
}

// List returns every subscriber.
func (c *Client) List(ctx context.Context) ([]Subscriber, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, SubscribersPath, nil, &raw); err != nil {
		return nil, err
	}
	subs, err := DecodeSubscribers(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("simulator answered an invalid list: %w", err)
	}
	return subs, nil
}

// Attach attaches sub, replacing it if it is attached.
func (c *Client) Attach(ctx context.Context, sub Subscriber) (Subscriber, error) {
	st := string(sub.State)
	ch := Change{State: &st}
	if sub.Addr.IsValid() {
		a := sub.Addr.String()
		ch.Addr = &a
	}
	return c.change(ctx, http.MethodPut, sub.ID, ch)
}

// Move gives a subscriber a new address.
func (c *Client) Move(ctx context.Context, id string, addr netip.AddrPort) (Subscriber, error) {
	a := addr.String()
	return c.change(ctx, http.MethodPatch, id, Change{Addr: &a})
}

// SetState changes a subscriber's state.
func (c *Client) SetState(ctx context.Context, id string, st scp.State) (Subscriber, error) {
	s := string(st)
	return c.change(ctx, http.MethodPatch, id, Change{State: &s})
}

// Detach removes a subscriber.
func (c *Client) Detach(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, SubscribersPath+"/"+url.PathEscape(id), nil, nil)
}

func (c *Client) change(ctx context.Context, method, id string, ch Change) (Subscriber, error) {
	body, err := json.Marshal(ch)
	if err != nil {
		return Subscriber{}, err
	}
	var e entry
	if err := c.do(ctx, method, SubscribersPath+"/"+url.PathEscape(id), body, &e); err != nil {
		return Subscriber{}, err
	}
	sub, err := e.subscriber()
	if err != nil {
		return Subscriber{}, fmt.Errorf("simulator answered an invalid subscriber: %w", err)
	}
	return sub, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// The url.Error wrapper would repeat the method and URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("simulator at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFileBytes))
	if err != nil {
		return fmt.Errorf("simulator at %s: reading answer: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			if resp.StatusCode == http.StatusNotFound {
				// Something else answers there: often a b2bua serve whose
				// --scp is not sim, which has no simulator to change.
				return fmt.Errorf("simulator at %s: %s %s: %s: no SCP simulator serves this address (b2bua serve runs one only with --scp sim)", c.base, method, path, resp.Status)
			}
			return fmt.Errorf("simulator at %s: %s %s: %s", c.base, method, path, resp.Status)
		}
		switch {
		case eb.Error.Code == CodeUnknownSubscriber:
			return fmt.Errorf("%s: %w", strings.TrimPrefix(path, SubscribersPath+"/"), scp.ErrUnknownSubscriber)
		case eb.Error.Code == CodeInvalidArgument && eb.Error.Field != "":
			return &registry.ValidationError{Field: eb.Error.Field, Rule: strings.TrimPrefix(eb.Error.Message, eb.Error.Field+": ")}
		}
		return fmt.Errorf("simulator at %s: %s", c.base, eb.Error.Message)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return errors.New("simulator answered invalid JSON")
	}
	return nil
}
