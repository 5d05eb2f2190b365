package sip

import (
	"strings"
	"testing"
)

func TestCheckAddrHeader(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{`To: <sip:b2bua@127.0.0.1>`, true},
		{`To: sip:b2bua@127.0.0.1;tag=1`, true},
		{`t: "Bob <the builder>" <sip:bob@x>;tag=2`, true},
		{`f: "a \" <" <sip:a@b>;tag=1`, true},
		{`Contact: <sip:a@1.2.3.4>;expires=60, <sip:a@5.6.7.8>`, true},
		{`Contact: *`, true},
		{`Subject: <<<<<`, true},
		{`To: Receiver sip:protos@x>`, false},
		{`To: Receiver <<<<sip:protos@x>`, false},
		{`To: Receiver <sip:protos@x>>>>`, false},
		{`From: <sip:a@b`, false},
		{`m: "open quote <sip:a@b>`, false},
		{`CONTACT : <sip:a@b>>`, false},
	} {
		if err := checkAddrHeader([]byte(tc.line)); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.line, err, tc.ok)
		}
	}
}

func TestCheckRequestAddrHeaders(t *testing.T) {
	bad := strings.Replace(goodOptions, "To: <sip:b2bua@127.0.0.1>", "To: <<sip:b2bua@127.0.0.1>", 1)
	if err := checkRequest([]byte(bad), true); err == nil || err.err != errAddr {
		t.Errorf("unbalanced To: %v", err)
	}
	folded := strings.Replace(goodOptions, "To: <sip:b2bua@127.0.0.1>", "To: Bob\r\n <sip:b2bua@127.0.0.1>", 1)
	if err := checkRequest([]byte(folded), true); err != nil {
		t.Errorf("folded To: %v", err)
	}
}
