package locators

import (
	"context"
	"net/url"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/capscp"
)

// openCAP opens the SS7 backend. Its URL carries the signalling settings
// as query parameters (see capscp.ParseURL); a timeout parameter there
// overrides Options.Timeout. The association comes up in the background.
func openCAP(_ context.Context, u *url.URL, opts Options) (scp.Locator, error) {
	cfg, err := capscp.ParseURL(u.String())
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = opts.Timeout
	}
	cfg.Logger = opts.Logger
	return capscp.New(cfg)
}
