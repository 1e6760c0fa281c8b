package envd

import (
	"context"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	rpc "github.com/airlock-sandbox/airlock/proto/process"
)

// BenchmarkStartTrue is envd's command round-trip without a network hop:
// Start("/bin/true") until its end event. BenchmarkExecTrue is the fork+exec
// floor (through the same reaper) it is compared with.
func BenchmarkStartTrue(b *testing.B) {
	e := newTestEnv(b)
	ctx := context.Background()
	for b.Loop() {
		s, err := e.client.Start(ctx, connect.NewRequest(&rpc.StartRequest{Process: &rpc.ProcessConfig{Cmd: "/bin/true"}}))
		if err != nil {
			b.Fatal(err)
		}
		var end bool
		for s.Receive() {
			if s.Msg().GetEvent().GetEnd() != nil {
				end = true
			}
		}
		if err := s.Err(); err != nil || !end {
			b.Fatalf("stream: %v (end seen: %v)", err, end)
		}
		s.Close()
	}
}

func BenchmarkExecTrue(b *testing.B) {
	procReaper.start() // like envd: every child is reaped by its loop
	for b.Loop() {
		_, exit, err := procReaper.forkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
		if err != nil {
			b.Fatal(err)
		}
		<-exit
	}
}
