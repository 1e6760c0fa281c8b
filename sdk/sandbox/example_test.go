package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// Create a sandbox from the environment's configuration, run a command
// and kill the sandbox.
func ExampleCreate() {
	ctx := context.Background()
	sbx, err := sandbox.Create(ctx, sandbox.CreateOptions{Template: "base"})
	if err != nil {
		log.Fatal(err)
	}
	defer sbx.Kill(ctx)

	res, err := sbx.Commands.Run(ctx, "echo hello from $(whoami)", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
	// Output: hello from user
}

// A failing command returns a *CommandExitError with its output.
func ExampleCommandExitError() {
	ctx := context.Background()
	sbx, err := sandbox.Create(ctx, sandbox.CreateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sbx.Kill(ctx)

	_, err = sbx.Commands.Run(ctx, "echo bad input >&2; exit 2", nil)
	var exitErr *sandbox.CommandExitError
	if errors.As(err, &exitErr) {
		fmt.Println(exitErr.ExitCode, strings.TrimSpace(exitErr.Stderr))
	}
	// Output: 2 bad input
}

// Stream a command's output to an io.Writer as it is produced.
func ExampleCommands_Run_writer() {
	ctx := context.Background()
	sbx, err := sandbox.Create(ctx, sandbox.CreateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sbx.Kill(ctx)

	_, err = sbx.Commands.Run(ctx, "for i in 1 2 3; do echo $i; done", &sandbox.RunOptions{Stdout: os.Stdout})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// 1
	// 2
	// 3
}

// Write files and list a directory.
func ExampleFiles_List() {
	ctx := context.Background()
	sbx, err := sandbox.Create(ctx, sandbox.CreateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sbx.Kill(ctx)

	_, err = sbx.Files.WriteMany(ctx, []sandbox.WriteEntry{
		{Path: "/home/user/project/main.go", Data: []byte("package main\n")},
		{Path: "/home/user/project/go.mod", Data: []byte("module demo\n")},
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	entries, err := sbx.Files.List(ctx, "/home/user/project", nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Println(e.Name, e.Type, e.Size)
	}
	// Unordered output:
	// go.mod file 12
	// main.go file 13
}

// Start a command in the background and attach to it again later.
func ExampleCommands_Connect() {
	ctx := context.Background()
	sbx, err := sandbox.Create(ctx, sandbox.CreateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sbx.Kill(ctx)

	h, err := sbx.Commands.Start(ctx, "sleep 1; echo done", nil)
	if err != nil {
		log.Fatal(err)
	}
	h.Disconnect() // the process keeps running

	h2, err := sbx.Commands.Connect(ctx, h.PID, nil)
	if err != nil {
		log.Fatal(err)
	}
	res, err := h2.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
	// Output: done
}

// Errors are typed: a killed sandbox is not found.
func ExampleErrNotFound() {
	ctx := context.Background()
	sbx, err := sandbox.Create(ctx, sandbox.CreateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := sbx.Kill(ctx); err != nil {
		log.Fatal(err)
	}
	_, err = sbx.GetInfo(ctx)
	fmt.Println(errors.Is(err, sandbox.ErrNotFound))
	running, _ := sbx.IsRunning(ctx)
	fmt.Println(running)
	// Output:
	// true
	// false
}
