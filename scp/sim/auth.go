package sim

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/imcall/b2bua/httpserver"
)

// CodeUnauthorized is the error code of a request without a valid bearer
// token (the provisioning API's code for the same answer).
const CodeUnauthorized = "unauthorized"

// RequireToken wraps next so that every request must carry
// "Authorization: Bearer TOKEN" (RFC 6750 section 2.1). A missing or wrong
// token gets 401 with WWW-Authenticate: Bearer and the protocol's error
// object, before any routing. The comparison is of SHA-256 digests in
// constant time, so neither the token's bytes nor its length leak through
// timing. An empty token refuses every request: a caller that means "open"
// does not wrap the handler at all.
func RequireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	configured := token != ""
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, presentedToken, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		presentedToken = strings.TrimSpace(presentedToken)
		presented := strings.EqualFold(scheme, "Bearer") && presentedToken != ""
		got := sha256.Sum256([]byte(presentedToken))
		if configured && presented && subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		// RFC 6750 section 3: error="invalid_token" only when a token was
		// presented.
		challenge := `Bearer realm="scp"`
		msg := "a bearer token is required"
		if presented {
			challenge += `, error="invalid_token"`
			msg = "the bearer token is not valid"
		}
		w.Header().Set("WWW-Authenticate", challenge)
		// Nothing of the body is wanted: do not wait for a slow one.
		httpserver.RefuseNow(w)
		writeJSON(w, http.StatusUnauthorized, ErrorBody{Error: ErrorObject{Code: CodeUnauthorized, Message: msg}})
	})
}

// bearerTransport adds the bearer token to every request of a Client.
type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// WithToken returns an HTTP client that sends "Authorization: Bearer
// token" on every request, for NewClient against a simulator that requires
// one. An empty token returns hc unchanged (nil: http.DefaultClient).
func WithToken(hc *http.Client, token string) *http.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	if token == "" {
		return hc
	}
	c := *hc
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = bearerTransport{token: token, next: rt}
	return &c
}
