// Package digest authenticates SIP requests on the server side with HTTP
// Digest (RFC 3261 section 22.4, RFC 7616), with the MD5 and SHA-256
// algorithms (RFC 8760). It builds the challenges for WWW-Authenticate or
// Proxy-Authenticate and verifies Authorization or Proxy-Authorization
// values. It knows nothing of SIP messages: the caller passes header values,
// the method and the request URI, so it works with any SIP stack.
//
// Nonces are stateless (time stamp, random and HMAC under a secret), so
// their age is checked without remembering them; a nonce-count can be used
// once per nonce, which a bounded, expiring cache enforces. An unknown user
// and a wrong password get the same error after the same work, so answers do
// not reveal which IM IDs exist.
package digest

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"

	"github.com/imcall/b2bua/registry"
)

// Errors Verify returns, wrapped; check them with errors.Is. Any other error
// (the credential lookup failed, the context ended) is not an authentication
// failure and should be answered as a server error.
var (
	// ErrStale: the credentials were right but the nonce has expired or
	// was forgotten; challenge again with Challenges(true) so that the UA
	// retries without asking its user (RFC 7616 section 3.3, "stale").
	ErrStale = errors.New("digest: stale nonce")
	// ErrInvalid: the credentials are missing, malformed, for another
	// realm or URI, replayed, or wrong, or the user is unknown. The detail
	// in the wrapping message is for logs only; it never says whether the
	// user exists.
	ErrInvalid = errors.New("digest: invalid credentials")
)

// CredentialLookup returns the stored digest credentials of username. It
// returns an error wrapping registry.ErrNotFound for an unknown user.
type CredentialLookup func(ctx context.Context, username string) (registry.Credentials, error)

// Defaults for Config fields left zero.
const (
	DefaultNonceTTL  = 5 * time.Minute
	DefaultMaxNonces = 1 << 16
)

// Config configures a Verifier.
type Config struct {
	// Realm is the protection realm, normally the SIP domain (RFC 3261
	// section 22.1). Required.
	Realm string
	// Lookup finds a user's credentials. Required.
	Lookup CredentialLookup
	// NonceTTL is how long a nonce is accepted; 0 means DefaultNonceTTL.
	NonceTTL time.Duration
	// Secret keys the nonce HMAC. Nodes that share it accept each other's
	// nonces. nil means a random secret for this Verifier only. At least 16
	// bytes when set.
	Secret []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxNonces caps how many used nonces are remembered for replay
	// detection; 0 means DefaultMaxNonces. When full, the oldest are
	// forgotten and nonces as old as those are answered as stale.
	MaxNonces int
	// Algorithms are the algorithms offered, in order of preference, and
	// the only ones accepted: "SHA-256" and "MD5". nil means MD5 alone.
	// RFC 8760 §2.4 lets a server send one challenge per algorithm, the
	// preferred first, and the UA use the first it supports; but SIPp 3.6
	// reads only the first challenge and aborts on SHA-256, and baresip 1.0
	// gives up when it gets two. With SHA-256 listed after MD5 no client
	// would use it (each takes the first it supports), so SHA-256 is worth
	// offering only first, where every client in use supports it
	// (linphone does; see the README).
	Algorithms []string
	// ServerHosts are the hosts (addresses, names) that name this server
	// itself, such as the address it listens on. A digest uri with no user
	// part naming one of them is accepted for any request: it is what SIPp
	// sends without -auth_uri (sip:REMOTE_IP:REMOTE_PORT), whatever the
	// Request-URI, and it names no other target. Compared without port,
	// case-insensitively.
	ServerHosts []string
}

// Verifier builds challenges and verifies credentials. It is safe for
// concurrent use.
type Verifier struct {
	realm   string
	lookup  CredentialLookup
	ttl     time.Duration
	now     func() time.Time
	nonces  nonceMinter
	replay  *replayCache
	algs    []algorithm          // offered, in order
	hosts   []string             // ServerHosts
	dummies map[algorithm]string // HA1 used for unknown users
}

// New validates cfg and returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	if cfg.Realm == "" {
		return nil, errors.New("digest: Config.Realm is required")
	}
	if cfg.Lookup == nil {
		return nil, errors.New("digest: Config.Lookup is required")
	}
	if cfg.NonceTTL < 0 {
		return nil, errors.New("digest: Config.NonceTTL must not be negative")
	}
	if cfg.NonceTTL == 0 {
		cfg.NonceTTL = DefaultNonceTTL
	}
	if cfg.MaxNonces < 0 {
		return nil, errors.New("digest: Config.MaxNonces must not be negative")
	}
	if cfg.MaxNonces == 0 {
		cfg.MaxNonces = DefaultMaxNonces
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	algs := []algorithm{algMD5}
	if cfg.Algorithms != nil {
		algs = nil
		for _, name := range cfg.Algorithms {
			a, ok := parseAlgorithm(name)
			if !ok || name == "" {
				return nil, fmt.Errorf("digest: Config.Algorithms: %q is not SHA-256 or MD5", name)
			}
			for _, b := range algs {
				if a == b {
					return nil, fmt.Errorf("digest: Config.Algorithms: %s listed twice", a)
				}
			}
			algs = append(algs, a)
		}
		if len(algs) == 0 {
			return nil, errors.New("digest: Config.Algorithms is empty")
		}
	}
	secret := cfg.Secret
	if secret == nil {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("digest: random secret: %w", err)
		}
	} else if len(secret) < 16 {
		return nil, errors.New("digest: Config.Secret must be at least 16 bytes")
	} else {
		secret = append([]byte(nil), secret...)
	}
	// The dummy HA1 is H of a random password, so no password matches it
	// but computing a response with it costs what a real one costs.
	var pw [32]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, fmt.Errorf("digest: random dummy: %w", err)
	}
	dummies := map[algorithm]string{}
	for _, a := range []algorithm{algMD5, algSHA256} {
		dummies[a] = hexHash(a, "\x00unknown:"+cfg.Realm+":"+hex.EncodeToString(pw[:]))
	}
	return &Verifier{
		realm:   cfg.Realm,
		lookup:  cfg.Lookup,
		ttl:     cfg.NonceTTL,
		now:     cfg.Now,
		nonces:  nonceMinter{secret: secret, realm: cfg.Realm},
		replay:  newReplayCache(cfg.MaxNonces, cfg.NonceTTL),
		algs:    algs,
		hosts:   append([]string(nil), cfg.ServerHosts...),
		dummies: dummies,
	}, nil
}

// Realm is the realm the Verifier challenges for.
func (v *Verifier) Realm() string { return v.realm }

// Challenges returns WWW-Authenticate or Proxy-Authenticate header values,
// one per algorithm of Config.Algorithms, in its order: a UA uses the
// first one it supports (RFC 8760 section 2.4; RFC 7616 section 3.7). Each
// offers qop="auth" only. stale marks that the previous nonce expired while
// the credentials were right (RFC 7616 section 3.3). All values carry the
// same fresh nonce. If the system's random source fails, which crypto/rand
// documents never to happen on supported platforms, the values carry a
// nonce that no request can satisfy.
func (v *Verifier) Challenges(stale bool) []string {
	nonce, err := v.nonces.mint(v.now())
	if err != nil {
		nonce = "unavailable"
	}
	out := make([]string, 0, len(v.algs))
	for _, a := range v.algs {
		var b strings.Builder
		b.WriteString("Digest realm=")
		b.WriteString(quote(v.realm))
		b.WriteString(", nonce=")
		b.WriteString(quote(nonce))
		b.WriteString(", algorithm=")
		b.WriteString(string(a))
		b.WriteString(`, qop="auth"`)
		if stale {
			b.WriteString(", stale=TRUE")
		}
		out = append(out, b.String())
	}
	return out
}

// Verify checks an Authorization or Proxy-Authorization header value for
// method and returns the authenticated username as the UA sent it. It does
// not compare the value's uri parameter with the request URI; a SIP server
// should call VerifyRequest instead, which does. Verify is
// VerifyRequest(ctx, method, "", headerValue).
func (v *Verifier) Verify(ctx context.Context, method, headerValue string) (string, error) {
	return v.VerifyRequest(ctx, method, "", headerValue)
}

// VerifyRequest is Verify that also requires the value's uri parameter to
// name requestURI (RFC 7616 section 3.4.6: the server checks that the uri
// matches the request target, so credentials captured for one URI cannot be
// replayed against another). Scheme and host compare case-insensitively,
// the rest exactly (RFC 3261 section 19.1.4 in the part that matters here).
// An empty requestURI skips the check.
//
// Credentials must use qop=auth: the challenges always offer it, RFC 3261
// section 22.4 requires UAs to honour it, and without nc and cnonce no
// replay could be detected. Algorithms are MD5 (also when absent, RFC 7616
// section 3.4) and SHA-256, as far as Config.Algorithms offers them; the
// -sess variants and userhash are refused because they are never offered.
func (v *Verifier) VerifyRequest(ctx context.Context, method, requestURI, headerValue string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	c, err := parseCredentials(headerValue)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for _, k := range []string{"username", "realm", "nonce", "uri", "response"} {
		if c[k] == "" {
			return "", fmt.Errorf("%w: missing %s", ErrInvalid, k)
		}
	}
	user := c["username"]
	if c["realm"] != v.realm {
		return "", fmt.Errorf("%w: realm %q is not %q", ErrInvalid, c["realm"], v.realm)
	}
	alg, ok := parseAlgorithm(c["algorithm"])
	if ok {
		ok = false
		for _, a := range v.algs {
			ok = ok || a == alg
		}
	}
	if !ok {
		return "", fmt.Errorf("%w: algorithm %q not offered", ErrInvalid, c["algorithm"])
	}
	if !strings.EqualFold(c["qop"], "auth") {
		return "", fmt.Errorf("%w: qop %q: only auth is accepted", ErrInvalid, c["qop"])
	}
	if strings.EqualFold(c["userhash"], "true") {
		return "", fmt.Errorf("%w: userhash not supported", ErrInvalid)
	}
	nc, err := parseNC(c["nc"])
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c["cnonce"] == "" {
		return "", fmt.Errorf("%w: missing cnonce", ErrInvalid)
	}
	if requestURI != "" && !sameURI(c["uri"], requestURI) && !v.namesServer(c["uri"]) {
		return "", fmt.Errorf("%w: uri %q does not match the request URI", ErrInvalid, c["uri"])
	}
	issued, err := v.nonces.open(c["nonce"])
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}

	known := true
	creds, err := v.lookup(ctx, user)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		known = false
	case err != nil:
		return "", fmt.Errorf("digest: credential lookup: %w", err)
	}
	ha1 := creds.HA1MD5
	if alg == algSHA256 {
		ha1 = creds.HA1SHA256
	}
	// A user stored for another realm, or without a hash for this
	// algorithm, cannot be verified; treat as unknown after the same work.
	if !known || creds.Realm != v.realm || ha1 == "" {
		known = false
		ha1 = v.dummies[alg]
	}
	want := response(alg, strings.ToLower(ha1), c["nonce"], c["nc"], c["cnonce"], "auth", method, c["uri"])
	got := strings.ToLower(c["response"])
	match := subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
	if !match || !known {
		return "", fmt.Errorf("%w: wrong response", ErrInvalid)
	}

	// Age is checked only once the response is right, so that stale is
	// set only for a UA that knows the password (RFC 7616 section 3.3).
	now := v.now()
	if age := now.Sub(issued); age > v.ttl || age < -v.ttl {
		return "", fmt.Errorf("%w: nonce issued %s ago", ErrStale, age.Round(time.Millisecond))
	}
	switch v.replay.use(c["nonce"], issued, nc, now) {
	case replayRepeated:
		return "", fmt.Errorf("%w: nonce count %08x already used", ErrInvalid, nc)
	case replayForgotten:
		return "", fmt.Errorf("%w: nonce no longer tracked", ErrStale)
	}
	return user, nil
}

// algorithm is a Digest algorithm name as written on the wire.
type algorithm string

const (
	algMD5    algorithm = "MD5"
	algSHA256 algorithm = "SHA-256"
)

func parseAlgorithm(s string) (algorithm, bool) {
	switch {
	case s == "", strings.EqualFold(s, string(algMD5)):
		return algMD5, true
	case strings.EqualFold(s, string(algSHA256)):
		return algSHA256, true
	}
	return "", false
}

func (a algorithm) new() hash.Hash {
	if a == algSHA256 {
		return sha256.New()
	}
	return md5.New()
}

func hexHash(a algorithm, s string) string {
	h := a.new()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// response is request-digest for qop=auth (RFC 7616 section 3.4.1; RFC 2617
// section 3.2.2.1): KD(HA1, nonce ":" nc ":" cnonce ":" qop ":" H(A2)) with
// A2 = method ":" uri (section 3.4.3).
func response(a algorithm, ha1, nonce, nc, cnonce, qop, method, uri string) string {
	ha2 := hexHash(a, method+":"+uri)
	return hexHash(a, ha1+":"+nonce+":"+nc+":"+cnonce+":"+qop+":"+ha2)
}

// parseNC reads nc-value: exactly 8 hex digits (RFC 7616 section 3.4),
// counting from 1.
func parseNC(s string) (uint32, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("nc %q is not 8 hex digits", s)
	}
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("nc %q is not 8 hex digits", s)
	}
	if n == 0 {
		return 0, errors.New("nc must start at 00000001")
	}
	return uint32(n), nil
}

// sameURI reports whether a digest uri names the request target uri. It
// compares what identifies the target and ignores what clients are known
// to leave out: SIPp's [authentication] without -auth_uri sends
// sip:HOST:PORT (no user) for every request, others send the Request-URI
// as is. Real servers check less still: Kamailio's auth module hashes the
// digest uri but never compares it with the R-URI (its auth_checks_*
// parameters, off by default, bind the nonce to the R-URI, Call-ID, From
// tag or source instead), and Asterisk's PJSIP verifies with pjsip's
// pjsip_auth_srv_verify, which does not compare it either. RFC 3261 §22.4
// says the uri "is the Request-URI"; what the check keeps is its point
// (RFC 7616 §3.4.6): credentials computed for one host or, when the digest
// uri names a user, for one user, are not accepted for another. The
// scheme (sip or sips), port, parameters and headers are not compared.
func sameURI(digestURI, requestURI string) bool {
	if digestURI == requestURI {
		return true
	}
	du, dh, ok := uriUserHost(digestURI)
	if !ok {
		return false
	}
	ru, rh, ok := uriUserHost(requestURI)
	if !ok {
		return false
	}
	return strings.EqualFold(dh, rh) && (du == "" || du == ru)
}

// namesServer reports whether a digest uri is sip:HOST[:PORT] with HOST
// one of Config.ServerHosts.
func (v *Verifier) namesServer(digestURI string) bool {
	user, host, ok := uriUserHost(digestURI)
	if !ok || user != "" {
		return false
	}
	for _, h := range v.hosts {
		if strings.EqualFold(strings.Trim(h, "[]"), strings.Trim(host, "[]")) {
			return true
		}
	}
	return false
}

// uriUserHost splits a sip: or sips: URI into its user part and its host
// without port; ok is false for other schemes.
func uriUserHost(u string) (user, host string, ok bool) {
	scheme, rest, ok := strings.Cut(u, ":")
	if !ok || !(strings.EqualFold(scheme, "sip") || strings.EqualFold(scheme, "sips")) {
		return "", "", false
	}
	// user@host;params?headers: '@' cannot appear unescaped in the user
	// part (which may carry ';' parameters, RFC 3261 §19.1.1), and the host
	// ends at the first ';' or '?' after it.
	if at := strings.LastIndexByte(cutAt(rest, '?'), '@'); at >= 0 {
		user, rest = rest[:at], rest[at+1:]
	}
	host = cutAt(cutAt(rest, ';'), '?')
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i >= 0 {
			return user, host[:i+1], host != ""
		}
	}
	host, _, _ = strings.Cut(host, ":")
	return user, host, host != ""
}

func cutAt(s string, c byte) string {
	if i := strings.IndexByte(s, c); i >= 0 {
		return s[:i]
	}
	return s
}
