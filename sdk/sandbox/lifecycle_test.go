package sandbox_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

func TestLifecycle(t *testing.T) {
	ctx := ctxT(t, 3*time.Minute)
	tag := fmt.Sprintf("lifecycle-%d", time.Now().UnixNano())
	sbx := newSandbox(t, sandbox.CreateOptions{Metadata: map[string]string{"suite": tag, "k": "v w"}, EnvVars: map[string]string{"FOO": "bar"}})

	if sbx.ID == "" || sbx.EnvdVersion == "" || sbx.EnvdAccessToken() == "" {
		t.Fatalf("sandbox = %+v: want ID, envd version and an access token (secure by default)", sbx)
	}
	info, err := sbx.GetInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.SandboxID != sbx.ID || info.State != sandbox.StateRunning || info.Metadata["suite"] != tag {
		t.Fatalf("info = %+v", info)
	}
	if ok, err := sbx.IsRunning(ctx); !ok || err != nil {
		t.Fatalf("IsRunning = %v, %v", ok, err)
	}
	if got := run(t, sbx, "echo $FOO"); got != "bar\n" {
		t.Fatalf("env var FOO = %q", got)
	}

	// SetTimeout may shorten the lifetime: endAt follows it.
	if err := sbx.SetTimeout(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	info2, err := sbx.GetInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(info2.EndAt); d > 2*time.Minute+5*time.Second || d < time.Minute {
		t.Fatalf("endAt after SetTimeout(2m) is %v away", d)
	}

	// A second client connects by ID and sees the same sandbox.
	other, err := sandbox.Connect(ctx, sbx.ID, 3*time.Minute, opts()...)
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, other, "echo $FOO"); got != "bar\n" {
		t.Fatalf("connected client: %q", got)
	}

	if err := sbx.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	// Typed errors for a killed sandbox.
	if _, err := sbx.GetInfo(ctx); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("GetInfo after kill: %v, want ErrNotFound", err)
	}
	if err := sbx.SetTimeout(ctx, time.Minute); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("SetTimeout after kill: %v, want ErrNotFound", err)
	}
	if _, err := sandbox.Connect(ctx, sbx.ID, 0, opts()...); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("Connect after kill: %v, want ErrNotFound", err)
	}
	if ok, err := testClient().Kill(ctx, sbx.ID); ok || err != nil {
		t.Fatalf("second Kill = %v, %v; want false, nil", ok, err)
	}
	if ok, err := sbx.IsRunning(ctx); ok || err != nil {
		t.Fatalf("IsRunning after kill = %v, %v", ok, err)
	}
	// envd traffic to a gone sandbox is a timeout, as in E2B's SDKs.
	if _, err := sbx.Commands.Run(ctx, "true", nil); !errors.Is(err, sandbox.ErrTimeout) {
		t.Fatalf("Run after kill: %v, want ErrTimeout", err)
	}
	if _, err := sbx.Files.Read(ctx, "/etc/hostname", nil); !errors.Is(err, sandbox.ErrTimeout) {
		t.Fatalf("Read after kill: %v, want ErrTimeout", err)
	}
}

func TestBadAPIKey(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	c := sandbox.NewClient(opts(sandbox.WithAPIKey("e2b_0000000000000000000000000000000000000000"))...)
	if _, err := c.Create(ctx, sandbox.CreateOptions{}); !errors.Is(err, sandbox.ErrAuthentication) {
		t.Fatalf("Create with bad key: %v, want ErrAuthentication", err)
	}
	if _, err := c.List(sandbox.ListOptions{}).NextItems(ctx); !errors.Is(err, sandbox.ErrAuthentication) {
		t.Fatalf("List with bad key: %v, want ErrAuthentication", err)
	}
}

func TestListPagination(t *testing.T) {
	ctx := ctxT(t, 3*time.Minute)
	tag := fmt.Sprintf("list-%d", time.Now().UnixNano())
	var ids []string
	for range 3 {
		ids = append(ids, newSandbox(t, sandbox.CreateOptions{Metadata: map[string]string{"suite": tag, "sp ace": "a&b=c"}}).ID)
	}
	// Unrelated sandbox that the metadata filter must exclude.
	newSandbox(t, sandbox.CreateOptions{Metadata: map[string]string{"suite": tag + "-other"}})

	p := testClient().List(sandbox.ListOptions{
		Metadata: map[string]string{"suite": tag, "sp ace": "a&b=c"},
		States:   []sandbox.State{sandbox.StateRunning},
		Limit:    2,
	})
	var pages int
	var got []string
	for items, err := range p.Pages(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(items) > 2 {
			t.Fatalf("page of %d items with limit 2", len(items))
		}
		for _, it := range items {
			got = append(got, it.SandboxID)
		}
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) || pages < 2 {
		t.Fatalf("listed %v in %d pages, want %v in >= 2", got, pages, ids)
	}
	if p.HasNext() {
		t.Fatal("HasNext after the last page")
	}
	if _, err := p.NextItems(ctx); !errors.Is(err, sandbox.ErrSandbox) {
		t.Fatalf("NextItems past the end: %v", err)
	}

	// The flat iterator sees the same set; the paused filter sees none.
	var n int
	for it, err := range testClient().List(sandbox.ListOptions{Metadata: map[string]string{"suite": tag}, Limit: 1}).All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if it.State != sandbox.StateRunning {
			t.Fatalf("state %q", it.State)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("All yielded %d sandboxes, want 3", n)
	}
	paused, err := testClient().List(sandbox.ListOptions{Metadata: map[string]string{"suite": tag}, States: []sandbox.State{sandbox.StatePaused}}).NextItems(ctx)
	if err != nil || len(paused) != 0 {
		t.Fatalf("paused = %v, %v", paused, err)
	}
}
