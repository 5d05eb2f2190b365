package digest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// A nonce is base64url(issued || random || mac): issued is the issue time in
// Unix nanoseconds (8 bytes, big endian), random is 12 bytes from
// crypto/rand, and mac is the first 16 bytes of HMAC-SHA-256 over the realm,
// issued and random under the verifier's secret. The verifier thus checks
// both origin and age of a nonce without remembering it (RFC 7616 section
// 3.3 suggests time-stamp and private key in the nonce); only nonces that have
// been used are remembered, for replay detection (replay.go).
const (
	nonceTimeLen = 8
	nonceRandLen = 12
	nonceMACLen  = 16
	nonceRawLen  = nonceTimeLen + nonceRandLen + nonceMACLen
)

var nonceEncoding = base64.RawURLEncoding

var errBadNonce = errors.New("nonce not issued by this verifier")

type nonceMinter struct {
	secret []byte
	realm  string
}

func (m nonceMinter) mac(issuedAndRand []byte) []byte {
	h := hmac.New(sha256.New, m.secret)
	// The realm is length-prefixed so no two (realm, payload) pairs give the
	// same HMAC input.
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(m.realm)))
	h.Write([]byte("sip-digest-nonce-v1"))
	h.Write(l[:])
	h.Write([]byte(m.realm))
	h.Write(issuedAndRand)
	return h.Sum(nil)[:nonceMACLen]
}

// mint returns a fresh nonce stamped with now.
func (m nonceMinter) mint(now time.Time) (string, error) {
	var raw [nonceRawLen]byte
	binary.BigEndian.PutUint64(raw[:nonceTimeLen], uint64(now.UnixNano()))
	if _, err := rand.Read(raw[nonceTimeLen : nonceTimeLen+nonceRandLen]); err != nil {
		return "", err
	}
	copy(raw[nonceTimeLen+nonceRandLen:], m.mac(raw[:nonceTimeLen+nonceRandLen]))
	return nonceEncoding.EncodeToString(raw[:]), nil
}

// open checks that nonce came from a minter with the same secret and realm
// and returns its issue time. The MAC comparison is constant-time.
func (m nonceMinter) open(nonce string) (time.Time, error) {
	if nonceEncoding.EncodedLen(nonceRawLen) != len(nonce) {
		return time.Time{}, errBadNonce
	}
	raw, err := nonceEncoding.DecodeString(nonce)
	if err != nil || len(raw) != nonceRawLen {
		return time.Time{}, errBadNonce
	}
	body := raw[:nonceTimeLen+nonceRandLen]
	if !hmac.Equal(raw[nonceTimeLen+nonceRandLen:], m.mac(body)) {
		return time.Time{}, errBadNonce
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(raw[:nonceTimeLen]))), nil
}
