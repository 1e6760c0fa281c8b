package storetest

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

var apiKeyTests = []test{
	{"CreateGetRoundTrip", testAPIKeyRoundTrip},
	{"CreateDuplicate", testAPIKeyDuplicate},
	{"Revoke", testAPIKeyRevoke},
	{"Touch", testAPIKeyTouch},
	{"List", testAPIKeyList},
}

func newAPIKey(id, hash string) *store.APIKey {
	return &store.APIKey{
		ID:        id,
		TeamID:    store.DefaultTeamID,
		Name:      "key " + id,
		Hash:      hash,
		Mask:      "e2b_1a2b…9f0e",
		CreatedAt: at(-time.Hour),
	}
}

func mustCreateAPIKey(t *testing.T, s store.Store, keys ...*store.APIKey) {
	t.Helper()
	for _, k := range keys {
		if err := s.CreateAPIKey(t.Context(), k); err != nil {
			t.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
		}
	}
}

func testAPIKeyRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := newAPIKey("key-1", "aaaa")
	used := newAPIKey("key-2", "bbbb")
	used.LastUsed = at(time.Minute)
	used.TeamID, used.Admin = "t-acme", true
	bare := &store.APIKey{ID: "key-3", Hash: "dddd"} // zero values: no team, not admin
	mustCreateAPIKey(t, s, k, used, bare)
	for _, want := range []*store.APIKey{k, used, bare} {
		got, err := s.GetAPIKeyByHash(ctx, want.Hash)
		if err != nil {
			t.Fatalf("GetAPIKeyByHash(%s): %v", want.Hash, err)
		}
		checkAPIKey(t, "GetAPIKeyByHash", got, want)
	}
	got, _ := s.GetAPIKeyByHash(ctx, "aaaa")
	if got != nil && !got.LastUsed.IsZero() {
		t.Errorf("LastUsed = %v, want zero", got.LastUsed)
	}
	if _, err := s.GetAPIKeyByHash(ctx, "cccc"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAPIKeyByHash missing: err = %v, want ErrNotFound", err)
	}
}

func testAPIKeyDuplicate(t *testing.T, s store.Store) {
	mustCreateAPIKey(t, s, newAPIKey("key-1", "aaaa"))
	for _, k := range []*store.APIKey{newAPIKey("key-1", "bbbb"), newAPIKey("key-2", "aaaa")} {
		if err := s.CreateAPIKey(t.Context(), k); !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("CreateAPIKey(%s, %s): err = %v, want ErrAlreadyExists", k.ID, k.Hash, err)
		}
	}
}

func testAPIKeyRevoke(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateAPIKey(t, s, newAPIKey("key-1", "aaaa"), newAPIKey("key-2", "bbbb"))
	if err := s.RevokeAPIKey(ctx, "key-1"); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	if _, err := s.GetAPIKeyByHash(ctx, "aaaa"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAPIKeyByHash(revoked): err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetAPIKeyByHash(ctx, "bbbb"); err != nil {
		t.Errorf("GetAPIKeyByHash(other key): %v", err)
	}
	keys, err := s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	revoked := map[string]bool{}
	for _, k := range keys {
		revoked[k.ID] = k.Revoked
	}
	if want := map[string]bool{"key-1": true, "key-2": false}; !maps.Equal(revoked, want) {
		t.Errorf("listed revoked flags = %v, want %v", revoked, want)
	}
	if err := s.RevokeAPIKey(ctx, "key-none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeAPIKey missing: err = %v, want ErrNotFound", err)
	}
}

func testAPIKeyTouch(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := newAPIKey("key-1", "aaaa")
	mustCreateAPIKey(t, s, k)
	when := at(42 * time.Microsecond)
	if err := s.TouchAPIKey(ctx, "key-1", when); err != nil {
		t.Fatalf("TouchAPIKey: %v", err)
	}
	got, err := s.GetAPIKeyByHash(ctx, "aaaa")
	if err != nil {
		t.Fatalf("GetAPIKeyByHash: %v", err)
	}
	want := *k
	want.LastUsed = when
	checkAPIKey(t, "after touch", got, &want)
	if err := s.TouchAPIKey(ctx, "key-none", when); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchAPIKey missing: err = %v, want ErrNotFound", err)
	}
}

func testAPIKeyList(t *testing.T, s store.Store) {
	ctx := t.Context()
	keys, err := s.ListAPIKeys(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("ListAPIKeys on empty store = %d keys, %v", len(keys), err)
	}
	want := []*store.APIKey{newAPIKey("key-b", "bb"), newAPIKey("key-a", "aa"), newAPIKey("key-c", "cc")}
	want[2].LastUsed = at(time.Second)
	want[1].Admin = true
	want[2].TeamID = "t-acme"
	mustCreateAPIKey(t, s, want...)
	got, err := s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("ListAPIKeys returned %d keys, want %d", len(got), len(want))
	}
	byID := func(a, b *store.APIKey) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(got, byID)
	slices.SortFunc(want, byID)
	for i := range want {
		checkAPIKey(t, "ListAPIKeys", got[i], want[i])
	}
}
