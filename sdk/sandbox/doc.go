// Package sandbox is the Go SDK for Airlock and for E2B's cloud: it creates
// and controls sandboxes over the E2B control API and talks to envd, the
// daemon inside every sandbox, for commands, pseudo-terminals and files.
//
// Configuration is read from the environment exactly like the official
// SDKs do (E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL, E2B_DOMAIN,
// E2B_DEBUG) and can be overridden with Options:
//
//	sbx, err := sandbox.Create(ctx, sandbox.CreateOptions{Template: "base"})
//	if err != nil { ... }
//	defer sbx.Kill(context.Background())
//	res, err := sbx.Commands.Run(ctx, "echo hello", nil)
//
// Sandboxes of template code-interpreter-v1 also run code in Jupyter-style
// kernels (Python, JavaScript, TypeScript, R, Bash) with RunCode, keeping
// state per CodeContext; exceptions raised by that code are reported in
// Execution.Error, not as Go errors.
//
// Errors can be tested with errors.Is against the sentinel errors
// (ErrNotFound, ErrTimeout, ErrAuthentication, ...); a command that exits
// with a non-zero code returns a *CommandExitError.
package sandbox
