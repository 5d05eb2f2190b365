package main

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/imcall/b2bua/scp"
	"github.com/imcall/b2bua/scp/scphttp"
	"github.com/imcall/b2bua/scp/sim"
)

// BenchmarkLocateHTTP is the http backend against the simulator's handler
// in the same process, over loopback: go test -bench . ./bench/scp
func BenchmarkLocateHTTP(b *testing.B) {
	s, err := sim.New(sim.Config{Subscribers: []sim.Subscriber{{ID: "imsi:001010000000001", Addr: netip.MustParseAddrPort("127.0.0.1:5062"), State: scp.Online}}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sim.NewHandler(s, nil))
	defer srv.Close()
	c, err := scphttp.New(scphttp.Config{URL: srv.URL, MaxIdleConnsPerHost: 256})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := c.Locate(ctx, "imsi:001010000000001"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLocateSim is the in-process simulator, the embedded default.
func BenchmarkLocateSim(b *testing.B) {
	s, err := sim.New(sim.Config{Subscribers: []sim.Subscriber{{ID: "imsi:001010000000001", Addr: netip.MustParseAddrPort("127.0.0.1:5062"), State: scp.Online}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := s.Locate(ctx, "imsi:001010000000001"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
