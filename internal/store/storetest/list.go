package storetest

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

var listTests = []test{
	{"Filters", testListFilters},
	{"Empty", testListEmpty},
	{"Ties", testListTies},
	{"Pagination", testListPagination},
}

// listFixture creates five sandboxes; sb-c and sb-e start at the same time.
// sb-a and sb-d are in team-a, sb-c and sb-e in team-b, sb-b in the default
// team.
func listFixture(t *testing.T, s store.Store) {
	mk := func(id, team string, st store.SandboxState, tmpl, alias string, started time.Duration, meta map[string]string) *store.Sandbox {
		sb := newSandbox(id, at(started))
		sb.TeamID, sb.State, sb.TemplateID, sb.Alias, sb.Metadata = team, st, tmpl, alias, meta
		return sb
	}
	mustCreate(t, s,
		mk("sb-c", "team-b", store.StateKilled, "tmpl-base", "base", 2*time.Second, map[string]string{"owner": "bob", "env": "dev"}),
		mk("sb-a", "team-a", store.StateRunning, "tmpl-base", "base", 0, map[string]string{"owner": "alice", "env": "dev", "a.b": `x"y`}),
		mk("sb-d", "team-a", store.StateRunning, "tmpl-node", "node", 3*time.Second, nil),
		mk("sb-b", store.DefaultTeamID, store.StatePaused, "tmpl-py", "python", time.Second, map[string]string{"owner": "alice", "env": "prod"}),
		mk("sb-e", "team-b", store.StateCreating, "tmpl-base", "", 2*time.Second, map[string]string{"owner": "alice"}),
	)
}

func testListFilters(t *testing.T, s store.Store) {
	listFixture(t, s)
	running := []store.SandboxState{store.StateRunning}
	cases := []struct {
		name string
		f    store.SandboxFilter
		want []string
	}{
		{"all newest first", store.SandboxFilter{}, []string{"sb-d", "sb-e", "sb-c", "sb-b", "sb-a"}},
		{"all ascending", store.SandboxFilter{Ascending: true}, []string{"sb-a", "sb-b", "sb-c", "sb-e", "sb-d"}},
		{"one state", store.SandboxFilter{States: running}, []string{"sb-d", "sb-a"}},
		{"two states", store.SandboxFilter{States: []store.SandboxState{store.StateRunning, store.StatePaused}}, []string{"sb-d", "sb-b", "sb-a"}},
		{"state none match", store.SandboxFilter{States: []store.SandboxState{"no-such-state"}}, nil},
		{"metadata one pair", store.SandboxFilter{Metadata: map[string]string{"owner": "alice"}}, []string{"sb-e", "sb-b", "sb-a"}},
		{"metadata all pairs", store.SandboxFilter{Metadata: map[string]string{"owner": "alice", "env": "dev"}}, []string{"sb-a"}},
		{"metadata odd key", store.SandboxFilter{Metadata: map[string]string{"a.b": `x"y`}}, []string{"sb-a"}},
		{"metadata no match", store.SandboxFilter{Metadata: map[string]string{"owner": "carol"}}, nil},
		{"metadata absent key is not empty", store.SandboxFilter{Metadata: map[string]string{"owner": "alice", "env": ""}}, nil},
		{"template by ID", store.SandboxFilter{TemplateID: "tmpl-base"}, []string{"sb-e", "sb-c", "sb-a"}},
		{"template by alias", store.SandboxFilter{TemplateID: "base"}, []string{"sb-c", "sb-a"}},
		{"template other alias", store.SandboxFilter{TemplateID: "python"}, []string{"sb-b"}},
		{"template unknown", store.SandboxFilter{TemplateID: "nope"}, nil},
		{"started after is inclusive", store.SandboxFilter{StartedAfter: at(2 * time.Second)}, []string{"sb-d", "sb-e", "sb-c"}},
		{"started after ascending", store.SandboxFilter{StartedAfter: at(2 * time.Second), Ascending: true}, []string{"sb-c", "sb-e", "sb-d"}},
		{"started after one microsecond later", store.SandboxFilter{StartedAfter: at(2*time.Second + time.Microsecond)}, []string{"sb-d"}},
		{"combined", store.SandboxFilter{States: running, Metadata: map[string]string{"owner": "alice"}, TemplateID: "base", Ascending: true}, []string{"sb-a"}},
		{"after cursor descending", store.SandboxFilter{After: &store.Cursor{StartedAt: at(2 * time.Second), ID: "sb-e"}}, []string{"sb-c", "sb-b", "sb-a"}},
		{"after cursor ascending", store.SandboxFilter{Ascending: true, After: &store.Cursor{StartedAt: at(2 * time.Second), ID: "sb-c"}}, []string{"sb-e", "sb-d"}},
		{"after cursor between items", store.SandboxFilter{After: &store.Cursor{StartedAt: at(1500 * time.Millisecond), ID: "zzz"}}, []string{"sb-b", "sb-a"}},
		{"limit larger than result", store.SandboxFilter{Limit: 10, States: running}, []string{"sb-d", "sb-a"}},
		{"team", store.SandboxFilter{TeamID: "team-a"}, []string{"sb-d", "sb-a"}},
		{"team ascending", store.SandboxFilter{TeamID: "team-b", Ascending: true}, []string{"sb-c", "sb-e"}},
		{"default team", store.SandboxFilter{TeamID: store.DefaultTeamID}, []string{"sb-b"}},
		{"team unknown", store.SandboxFilter{TeamID: "team-c"}, nil},
		{"team is matched whole", store.SandboxFilter{TeamID: "team"}, nil},
		{"team and state", store.SandboxFilter{TeamID: "team-a", States: running}, []string{"sb-d", "sb-a"}},
		{"team and state none match", store.SandboxFilter{TeamID: "team-b", States: running}, nil},
		{"team and two states", store.SandboxFilter{TeamID: "team-b", States: []store.SandboxState{store.StateKilled, store.StatePaused}}, []string{"sb-c"}},
		{"team and metadata", store.SandboxFilter{TeamID: "team-b", Metadata: map[string]string{"owner": "alice"}}, []string{"sb-e"}},
		{"team and template ID", store.SandboxFilter{TeamID: "team-b", TemplateID: "tmpl-base"}, []string{"sb-e", "sb-c"}},
		{"team and template alias", store.SandboxFilter{TeamID: "team-b", TemplateID: "base"}, []string{"sb-c"}},
		{"team and started after", store.SandboxFilter{TeamID: "team-a", StartedAfter: at(time.Second)}, []string{"sb-d"}},
		{"team after cursor", store.SandboxFilter{TeamID: "team-b", After: &store.Cursor{StartedAt: at(2 * time.Second), ID: "sb-e"}}, []string{"sb-c"}},
		{"team after cursor ascending", store.SandboxFilter{TeamID: "team-a", Ascending: true, After: &store.Cursor{StartedAt: at(0), ID: "sb-a"}}, []string{"sb-d"}},
		{"team combined", store.SandboxFilter{TeamID: "team-a", States: running, Metadata: map[string]string{"owner": "alice"}, TemplateID: "base"}, []string{"sb-a"}},
		{"team combined other team", store.SandboxFilter{TeamID: "team-b", States: running, Metadata: map[string]string{"owner": "alice"}, TemplateID: "base"}, nil},
		{"team combined match", store.SandboxFilter{TeamID: "team-a", States: running, Metadata: map[string]string{"env": "dev"}, TemplateID: "tmpl-base", Limit: 5}, []string{"sb-a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, next, err := s.ListSandboxes(t.Context(), tc.f)
			if err != nil {
				t.Fatalf("ListSandboxes: %v", err)
			}
			checkIDs(t, "ListSandboxes", ids(got), tc.want)
			if next != nil {
				t.Errorf("next cursor = %+v on the only page, want nil", next)
			}
		})
	}

	t.Run("returns full records", func(t *testing.T) {
		got, _, err := s.ListSandboxes(t.Context(), store.SandboxFilter{Metadata: map[string]string{"env": "prod"}})
		if err != nil || len(got) != 1 {
			t.Fatalf("ListSandboxes = %v, %v; want one sandbox", ids(got), err)
		}
		want := newSandbox("sb-b", at(time.Second))
		want.State, want.TemplateID, want.Alias = store.StatePaused, "tmpl-py", "python"
		want.Metadata = map[string]string{"owner": "alice", "env": "prod"}
		checkSandbox(t, "listed sandbox", got[0], want)
	})

	t.Run("returns the team", func(t *testing.T) {
		got, _, err := s.ListSandboxes(t.Context(), store.SandboxFilter{TeamID: "team-b", Ascending: true})
		if err != nil || len(got) != 2 {
			t.Fatalf("ListSandboxes = %v, %v; want two sandboxes", ids(got), err)
		}
		want := newSandbox("sb-c", at(2*time.Second))
		want.TeamID, want.State = "team-b", store.StateKilled
		want.Metadata = map[string]string{"owner": "bob", "env": "dev"}
		checkSandbox(t, "listed sandbox", got[0], want)
		for _, sb := range got {
			if sb.TeamID != "team-b" {
				t.Errorf("%s has TeamID %q, want team-b", sb.ID, sb.TeamID)
			}
		}
	})

	t.Run("team pages", func(t *testing.T) {
		checkIDs(t, "team-b by 1", pageAll(t, s, store.SandboxFilter{TeamID: "team-b", Limit: 1}), []string{"sb-e", "sb-c"})
		checkIDs(t, "team-b by 1 ascending", pageAll(t, s, store.SandboxFilter{TeamID: "team-b", Limit: 1, Ascending: true}), []string{"sb-c", "sb-e"})
		checkIDs(t, "team-a by 2", pageAll(t, s, store.SandboxFilter{TeamID: "team-a", Limit: 2}), []string{"sb-d", "sb-a"})
		got, next, err := s.ListSandboxes(t.Context(), store.SandboxFilter{TeamID: "team-a", Limit: 1})
		if err != nil {
			t.Fatalf("ListSandboxes: %v", err)
		}
		checkIDs(t, "team-a first page", ids(got), []string{"sb-d"})
		if next == nil || next.ID != "sb-d" || !next.StartedAt.Equal(at(3*time.Second)) {
			t.Fatalf("next = %+v, want position of sb-d", next)
		}
	})

	t.Run("limit returns cursor of last item", func(t *testing.T) {
		got, next, err := s.ListSandboxes(t.Context(), store.SandboxFilter{Limit: 2})
		if err != nil {
			t.Fatalf("ListSandboxes: %v", err)
		}
		checkIDs(t, "first page", ids(got), []string{"sb-d", "sb-e"})
		if next == nil || next.ID != "sb-e" || !next.StartedAt.Equal(at(2*time.Second)) {
			t.Fatalf("next = %+v, want position of sb-e", next)
		}
	})
}

func testListEmpty(t *testing.T, s store.Store) {
	got, next, err := s.ListSandboxes(t.Context(), store.SandboxFilter{Limit: 5})
	if err != nil {
		t.Fatalf("ListSandboxes: %v", err)
	}
	if len(got) != 0 || next != nil {
		t.Fatalf("ListSandboxes on empty store = %v, %+v; want nothing", ids(got), next)
	}
}

func testListTies(t *testing.T, s store.Store) {
	want := []string{"sb-t1", "sb-t2", "sb-t3", "sb-t4", "sb-t5", "sb-t6"}
	for _, i := range []int{3, 0, 5, 1, 4, 2} {
		mustCreate(t, s, newSandbox(want[i], baseTime))
	}
	desc := slices.Clone(want)
	slices.Reverse(desc)
	for _, tc := range []struct {
		name string
		asc  bool
		want []string
	}{{"ascending", true, want}, {"descending", false, desc}} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := s.ListSandboxes(t.Context(), store.SandboxFilter{Ascending: tc.asc})
			if err != nil {
				t.Fatalf("ListSandboxes: %v", err)
			}
			checkIDs(t, "all", ids(got), tc.want)
			checkIDs(t, "paged by 4", pageAll(t, s, store.SandboxFilter{Ascending: tc.asc, Limit: 4}), tc.want)
		})
	}
}

// pageAll follows cursors to the end and returns every ID seen in order.
func pageAll(t *testing.T, s store.Store, f store.SandboxFilter) []string {
	t.Helper()
	var all []string
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("pagination does not end")
		}
		got, next, err := s.ListSandboxes(t.Context(), f)
		if err != nil {
			t.Fatalf("ListSandboxes page %d: %v", page, err)
		}
		if len(got) > f.Limit {
			t.Fatalf("page %d has %d items, limit %d", page, len(got), f.Limit)
		}
		all = append(all, ids(got)...)
		if next == nil {
			// The page that reaches the end must say so itself, not
			// leave the caller an extra empty page to fetch.
			if want := max(1, (len(all)+f.Limit-1)/f.Limit); page+1 != want {
				t.Fatalf("%d items took %d pages of %d, want %d", len(all), page+1, f.Limit, want)
			}
			return all
		}
		if len(got) == 0 {
			t.Fatalf("page %d is empty but has a next cursor", page)
		}
		if last := got[len(got)-1]; next.ID != last.ID || !next.StartedAt.Equal(last.StartedAt) {
			t.Fatalf("page %d: next = %+v, want position of last item %s", page, next, last.ID)
		}
		f.After = next
	}
}

func testListPagination(t *testing.T, s store.Store) {
	const n = 250
	sbs := make([]*store.Sandbox, n)
	for i := range sbs {
		// Few distinct start times, microseconds apart, so that pages split ties.
		sb := newSandbox(sbID(i), at(time.Duration(i%23)*time.Microsecond+time.Duration(i%2)*time.Hour))
		if i%3 == 0 {
			sb.State = store.StateKilled
		}
		sb.TeamID = []string{"team-a", "team-b", "team-a", store.DefaultTeamID, "team-c"}[i%5]
		sbs[i] = sb
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(n, func(i, j int) { sbs[i], sbs[j] = sbs[j], sbs[i] })
	mustCreate(t, s, sbs...)

	slices.SortFunc(sbs, func(a, b *store.Sandbox) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	asc := ids(sbs)
	var ascKilled, ascTeam, ascTeamKilled []string
	for _, sb := range sbs {
		if sb.State == store.StateKilled {
			ascKilled = append(ascKilled, sb.ID)
		}
		if sb.TeamID == "team-a" {
			ascTeam = append(ascTeam, sb.ID)
			if sb.State == store.StateKilled {
				ascTeamKilled = append(ascTeamKilled, sb.ID)
			}
		}
	}
	reversed := func(s []string) []string { c := slices.Clone(s); slices.Reverse(c); return c }

	for _, limit := range []int{1, 7, 50, 250, 251} {
		for _, ascending := range []bool{true, false} {
			want, wantKilled, wantTeam, wantTeamKilled := asc, ascKilled, ascTeam, ascTeamKilled
			if !ascending {
				want, wantKilled = reversed(asc), reversed(ascKilled)
				wantTeam, wantTeamKilled = reversed(ascTeam), reversed(ascTeamKilled)
			}
			got := pageAll(t, s, store.SandboxFilter{Limit: limit, Ascending: ascending})
			checkIDs(t, "all pages", got, want)
			got = pageAll(t, s, store.SandboxFilter{Limit: limit, Ascending: ascending, States: []store.SandboxState{store.StateKilled}})
			checkIDs(t, "killed pages", got, wantKilled)
			got = pageAll(t, s, store.SandboxFilter{Limit: limit, Ascending: ascending, TeamID: "team-a"})
			checkIDs(t, "team pages", got, wantTeam)
			got = pageAll(t, s, store.SandboxFilter{Limit: limit, Ascending: ascending, TeamID: "team-a", States: []store.SandboxState{store.StateKilled}})
			checkIDs(t, "team killed pages", got, wantTeamKilled)
			if t.Failed() {
				t.Fatalf("limit %d ascending %v failed", limit, ascending)
			}
		}
	}
}
