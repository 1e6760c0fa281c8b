package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

var sandboxTests = []test{
	{"CreateGetRoundTrip", testSandboxRoundTrip},
	{"CreateDuplicate", testSandboxDuplicate},
	{"GetMissing", testSandboxGetMissing},
	{"UpdateRoundTrip", testSandboxUpdate},
	{"UpdatePauseResume", testSandboxPauseResume},
	{"UpdateMissing", testSandboxUpdateMissing},
	{"UpdateFnError", testSandboxUpdateFnError},
	{"UpdateConcurrent", testSandboxUpdateConcurrent},
}

func testSandboxRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	inTeam := newSandbox("sb-team", at(time.Minute))
	inTeam.TeamID, inTeam.State = "t-acme", store.StatePaused
	cases := []struct {
		name string
		sb   *store.Sandbox
	}{
		{"another team", inTeam},
		{"every field set", newSandbox("sb-full", baseTime)},
		{"zero values", &store.Sandbox{ID: "sb-zero", State: store.StateCreating}},
		{"nanoseconds", newSandbox("sb-nanos", baseTime.Add(999))},
		{"far future", newSandbox("sb-future", time.Date(2199, 12, 31, 23, 59, 59, 999999000, time.UTC))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := normSandbox(tc.sb)
			if err := s.CreateSandbox(ctx, tc.sb); err != nil {
				t.Fatalf("CreateSandbox: %v", err)
			}
			// The store must have copied the maps, not kept the caller's.
			if tc.sb.Metadata != nil {
				tc.sb.Metadata["owner"] = "mallory"
			}
			got, err := s.GetSandbox(ctx, tc.sb.ID)
			if err != nil {
				t.Fatalf("GetSandbox: %v", err)
			}
			if tc.name == "nanoseconds" {
				// Backends must keep at least microseconds; they may
				// round or truncate below that.
				for _, p := range [][2]*time.Time{
					{&got.StartedAt, &want.StartedAt}, {&got.EndAt, &want.EndAt},
					{&got.PausedAt, &want.PausedAt},
					{&got.EndedAt, &want.EndedAt}, {&got.UpdatedAt, &want.UpdatedAt},
				} {
					if d := p[0].Sub(*p[1]).Abs(); d < time.Microsecond {
						*p[0] = *p[1]
					}
				}
			}
			checkSandbox(t, "GetSandbox", got, &want)
			for name, tm := range map[string]time.Time{"EndedAt": got.EndedAt, "StartedAt": got.StartedAt, "PausedAt": got.PausedAt} {
				if want := tc.sb.ID == "sb-zero"; tm.IsZero() != want {
					t.Errorf("%s.IsZero() = %v, want %v", name, tm.IsZero(), want)
				}
			}
		})
	}
}

func testSandboxDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, newSandbox("sb-dup", baseTime))
	dup := newSandbox("sb-dup", at(time.Hour))
	dup.State = store.StateKilled
	if err := s.CreateSandbox(ctx, dup); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("CreateSandbox duplicate: err = %v, want ErrAlreadyExists", err)
	}
	got, err := s.GetSandbox(ctx, "sb-dup")
	if err != nil {
		t.Fatalf("GetSandbox: %v", err)
	}
	checkSandbox(t, "after failed duplicate", got, newSandbox("sb-dup", baseTime))
}

func testSandboxGetMissing(t *testing.T, s store.Store) {
	mustCreate(t, s, newSandbox("sb-1", baseTime))
	if _, err := s.GetSandbox(t.Context(), "sb-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSandbox missing: err = %v, want ErrNotFound", err)
	}
}

func testSandboxUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, newSandbox("sb-up", baseTime), newSandbox("sb-other", baseTime))
	want := &store.Sandbox{
		ID:            "sb-up",
		TeamID:        "t-other",
		TemplateID:    "tmpl-py",
		Alias:         "python",
		State:         store.StateKilled,
		Runtime:       "runc",
		Metadata:      map[string]string{"new": "yes"},
		EnvVars:       nil,
		Secure:        false,
		AccessToken:   "",
		TrafficToken:  "t2",
		AllowInternet: false,
		AutoPause:     false,
		CPUCount:      8,
		MemoryMB:      4096,
		DiskSizeMB:    10240,
		IP:            "10.11.0.9",
		StartedAt:     at(-time.Hour),
		EndAt:         at(2 * time.Hour),
		PausedAt:      at(90*time.Minute + 3*time.Microsecond),
		EndedAt:       time.Time{},
		EndReason:     "killed",
		UpdatedAt:     at(3*time.Hour + time.Microsecond),
	}
	got, err := s.UpdateSandbox(ctx, "sb-up", func(sb *store.Sandbox) error {
		checkSandbox(t, "fn argument", sb, newSandbox("sb-up", baseTime))
		*sb = *want
		sb.Metadata = map[string]string{"new": "yes"}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateSandbox: %v", err)
	}
	checkSandbox(t, "UpdateSandbox result", got, want)
	got, err = s.GetSandbox(ctx, "sb-up")
	if err != nil {
		t.Fatalf("GetSandbox: %v", err)
	}
	checkSandbox(t, "GetSandbox after update", got, want)
	if !got.EndedAt.IsZero() {
		t.Errorf("EndedAt = %v, want zero", got.EndedAt)
	}
	other, err := s.GetSandbox(ctx, "sb-other")
	if err != nil {
		t.Fatalf("GetSandbox other: %v", err)
	}
	checkSandbox(t, "untouched sandbox", other, newSandbox("sb-other", baseTime))
}

// Pausing records PausedAt; resuming clears it back to the zero time.
func testSandboxPauseResume(t *testing.T, s store.Store) {
	ctx := t.Context()
	start := newSandbox("sb-p", baseTime)
	start.PausedAt = time.Time{}
	mustCreate(t, s, start)
	got, err := s.GetSandbox(ctx, "sb-p")
	if err != nil {
		t.Fatalf("GetSandbox: %v", err)
	}
	if !got.PausedAt.IsZero() {
		t.Fatalf("PausedAt = %v before any pause, want zero", got.PausedAt)
	}

	pausedAt := at(10*time.Minute + 7*time.Microsecond)
	paused := *start
	paused.State, paused.PausedAt = store.StatePaused, pausedAt
	for _, step := range []struct {
		name string
		want *store.Sandbox
	}{
		{"pause", &paused},
		{"resume", start},
		{"pause again", &paused},
	} {
		got, err := s.UpdateSandbox(ctx, "sb-p", func(sb *store.Sandbox) error {
			sb.State, sb.PausedAt = step.want.State, step.want.PausedAt
			return nil
		})
		if err != nil {
			t.Fatalf("%s: UpdateSandbox: %v", step.name, err)
		}
		checkSandbox(t, step.name+": UpdateSandbox result", got, step.want)
		got, err = s.GetSandbox(ctx, "sb-p")
		if err != nil {
			t.Fatalf("%s: GetSandbox: %v", step.name, err)
		}
		checkSandbox(t, step.name+": GetSandbox", got, step.want)
		if got.PausedAt.IsZero() != step.want.PausedAt.IsZero() {
			t.Errorf("%s: PausedAt = %v, want %v", step.name, got.PausedAt, step.want.PausedAt)
		}
		listed, _, err := s.ListSandboxes(ctx, store.SandboxFilter{TeamID: store.DefaultTeamID})
		if err != nil || len(listed) != 1 {
			t.Fatalf("%s: ListSandboxes = %v, %v; want one sandbox", step.name, ids(listed), err)
		}
		checkSandbox(t, step.name+": listed", listed[0], step.want)
	}
}

func testSandboxUpdateMissing(t *testing.T, s store.Store) {
	called := false
	_, err := s.UpdateSandbox(t.Context(), "sb-none", func(*store.Sandbox) error {
		called = true
		return nil
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateSandbox missing: err = %v, want ErrNotFound", err)
	}
	if called {
		t.Error("fn was called for a missing sandbox")
	}
}

func testSandboxUpdateFnError(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, newSandbox("sb-fn", baseTime))
	errBoom := errors.New("boom")
	_, err := s.UpdateSandbox(ctx, "sb-fn", func(sb *store.Sandbox) error {
		sb.State = store.StateKilled
		sb.Metadata["owner"] = "mallory"
		sb.CPUCount = 99
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("UpdateSandbox: err = %v, want fn's error", err)
	}
	got, err := s.GetSandbox(ctx, "sb-fn")
	if err != nil {
		t.Fatalf("GetSandbox: %v", err)
	}
	checkSandbox(t, "after failed fn", got, newSandbox("sb-fn", baseTime))
}

func testSandboxUpdateConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	start := newSandbox("sb-race", baseTime)
	start.CPUCount = 0
	start.Metadata = map[string]string{}
	mustCreate(t, s, start)

	const workers = 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			_, err := s.UpdateSandbox(ctx, "sb-race", func(sb *store.Sandbox) error {
				sb.CPUCount++
				sb.Metadata[sbID(i)] = "x"
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent UpdateSandbox: %v", err)
		}
	}
	got, err := s.GetSandbox(ctx, "sb-race")
	if err != nil {
		t.Fatalf("GetSandbox: %v", err)
	}
	if got.CPUCount != workers {
		t.Errorf("CPUCount = %d after %d increments: lost updates", got.CPUCount, workers)
	}
	if len(got.Metadata) != workers {
		t.Errorf("len(Metadata) = %d, want %d: lost updates", len(got.Metadata), workers)
	}
}
