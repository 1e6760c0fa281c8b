package oci_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/airlock-sandbox/airlock/internal/leakcheck"
	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/runtime/drivertest"
	"github.com/airlock-sandbox/airlock/internal/runtime/oci"
)

// BenchmarkCreateKill measures one full sandbox lifecycle with runc:
// overlay mount, bundle, create+start, then kill, delete and cleanup.
func BenchmarkCreateKill(b *testing.B) {
	e := newEnv(b, oci.RuntimeRunc)
	before := leakcheck.MustSnapshot(b, e.leak)
	b.Cleanup(func() { leakcheck.Check(b, before) })
	d := e.driver(b)
	rootfs := drivertest.BusyboxRootfs(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		spec := runtime.Spec{
			ID:        fmt.Sprintf("bench%d", i),
			RootfsDir: rootfs,
			Args:      []string{"/bin/busybox", "sleep", "1000"},
			Resources: runtime.Resources{CPUCount: 1, MemoryMB: 256, PidsMax: 100},
		}
		if _, err := d.Create(ctx, spec); err != nil {
			b.Fatal(err)
		}
		if err := d.Kill(ctx, spec.ID); err != nil {
			b.Fatal(err)
		}
	}
}
