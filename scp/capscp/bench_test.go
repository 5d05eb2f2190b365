package capscp

import (
	"context"
	"testing"
)

// BenchmarkLocate: lookups in parallel over one association to the real
// server on loopback, client and server in this process.
func BenchmarkLocate(b *testing.B) {
	ln := listen(b, "127.0.0.1:0")
	startSCP(b, ln, newSim(b), nil)
	c := newClient(b, Config{Addr: ln.Addr().String()})
	ids := []string{"imsi:" + imsiOnline, "imsi:" + imsiBusy, "imsi:" + imsiAbsent}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.Locate(context.Background(), ids[i%len(ids)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
