package sandbox_test

import (
	"context"
	"fmt"
	"log"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// Run Python in a code interpreter sandbox: state persists between
// calls, output streams to callbacks, and exceptions come back as data.
func ExampleSandbox_RunCode() {
	ctx := context.Background()
	sbx, err := sandbox.Create(ctx, sandbox.CreateOptions{Template: sandbox.CodeInterpreterTemplate})
	if err != nil {
		log.Fatal(err)
	}
	defer sbx.Kill(ctx)

	if _, err := sbx.RunCode(ctx, "x = 41", nil); err != nil {
		log.Fatal(err)
	}
	exec, err := sbx.RunCode(ctx, "print('computing')\nx + 1", &sandbox.RunCodeOptions{
		OnStdout: func(m sandbox.OutputMessage) { fmt.Print("stdout: ", m.Line) },
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("result:", exec.Text())

	exec, err = sbx.RunCode(ctx, "1/0", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("raised:", exec.Error.Name)
	// Output:
	// stdout: computing
	// result: 42
	// raised: ZeroDivisionError
}
