package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

var templateBuildTests = []test{
	{"RoundTripAndReplace", testBuildRoundTrip},
	{"ListByTemplate", testBuildList},
	{"Tags", testBuildTags},
	{"DeleteBuilds", testDeleteBuilds},
}

func newBuild(id, templateID string, created time.Time) *store.TemplateBuild {
	return &store.TemplateBuild{
		ID: id, TemplateID: templateID, TeamID: "t-acme", Status: store.BuildReady,
		Reason: "r", ReasonStep: "3", CPUCount: 2, MemoryMB: 1024, RootfsDir: "/data/templates/" + templateID + "/rootfs-" + id,
		StartCmd: "serve", ReadyCmd: "true", User: "user", Workdir: "/home/user",
		Envs: map[string]string{"K": "v"}, CreatedAt: created, UpdatedAt: created.Add(time.Second),
	}
}

func normBuild(b *store.TemplateBuild) store.TemplateBuild {
	c := *b
	if c.Envs == nil {
		c.Envs = map[string]string{}
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c
}

func checkBuild(t *testing.T, got, want *store.TemplateBuild) {
	t.Helper()
	if g, w := normBuild(got), normBuild(want); !reflect.DeepEqual(g, w) {
		t.Errorf("build mismatch\n got: %+v\nwant: %+v", g, w)
	}
}

func testBuildRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := newBuild("b1", "tpl", at(0))
	if err := s.PutTemplateBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTemplateBuild(ctx, "b1")
	if err != nil {
		t.Fatal(err)
	}
	checkBuild(t, got, b)
	// Every field changes, so an upsert that forgets a column shows.
	b = &store.TemplateBuild{
		ID: "b1", TemplateID: "tpl2", TeamID: "t-other", Status: store.BuildError,
		Reason: "boom", ReasonStep: "finalize", CPUCount: 4, MemoryMB: 2048,
		StartCmd: "", ReadyCmd: "sleep 1", User: "root", Workdir: "/",
		CreatedAt: at(time.Minute), UpdatedAt: at(2 * time.Minute),
	}
	if err := s.PutTemplateBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetTemplateBuild(ctx, "b1")
	if err != nil {
		t.Fatal(err)
	}
	checkBuild(t, got, b)
	if list, _ := s.ListTemplateBuilds(ctx, "tpl"); len(list) != 0 {
		t.Errorf("replaced build still listed under its old template: %v", buildIDs(list))
	}
	if _, err := s.GetTemplateBuild(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing build: %v", err)
	}
}

func testBuildList(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, b := range []*store.TemplateBuild{newBuild("b2", "tpl", at(time.Minute)), newBuild("b1", "tpl", at(0)), newBuild("x", "other", at(0))} {
		if err := s.PutTemplateBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListTemplateBuilds(ctx, "tpl")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "b1" || list[1].ID != "b2" {
		t.Fatalf("list = %v, want b1, b2", buildIDs(list))
	}
	if list, _ := s.ListTemplateBuilds(ctx, "none"); len(list) != 0 {
		t.Errorf("unknown template lists %d builds", len(list))
	}
}

func buildIDs(bs []*store.TemplateBuild) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func testBuildTags(t *testing.T, s store.Store) {
	ctx := t.Context()
	put := func(tpl, tag, build string, created time.Time) {
		t.Helper()
		if err := s.PutTemplateTag(ctx, &store.TemplateTag{TemplateID: tpl, Tag: tag, BuildID: build, CreatedAt: created}); err != nil {
			t.Fatal(err)
		}
	}
	put("tpl", "v1", "b1", at(0))
	put("tpl", "a-tie", "b1", at(0)) // same time as v1: ordered by tag
	put("tpl", "default", "b1", at(time.Second))
	put("other", "v1", "x", at(0))
	put("tpl", "default", "b2", at(2*time.Second)) // moves
	got, err := s.GetTemplateTag(ctx, "tpl", "default")
	if err != nil || got.BuildID != "b2" || !got.CreatedAt.Equal(at(2*time.Second)) {
		t.Fatalf("moved tag = %+v, %v", got, err)
	}
	if got, _ := s.GetTemplateTag(ctx, "other", "v1"); got == nil || got.BuildID != "x" {
		t.Errorf("another template's tag = %+v", got)
	}
	list, err := s.ListTemplateTags(ctx, "tpl")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tagNames(list), []string{"a-tie", "v1", "default"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tags = %v, want %v", got, want)
	}
	for _, tg := range list {
		if tg.TemplateID != "tpl" {
			t.Errorf("tag %q of template %q listed under tpl", tg.Tag, tg.TemplateID)
		}
	}
	if err := s.DeleteTemplateTag(ctx, "tpl", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTemplateTag(ctx, "tpl", "v1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted tag: %v", err)
	}
	if err := s.DeleteTemplateTag(ctx, "tpl", "v1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting a missing tag: %v", err)
	}
}

func tagNames(ts []*store.TemplateTag) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Tag)
	}
	return out
}

func testDeleteBuilds(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, b := range []*store.TemplateBuild{newBuild("b1", "tpl", at(0)), newBuild("x", "other", at(0))} {
		if err := s.PutTemplateBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := s.PutTemplateTag(ctx, &store.TemplateTag{TemplateID: b.TemplateID, Tag: "default", BuildID: b.ID, CreatedAt: at(0)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteTemplateBuilds(ctx, "tpl"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListTemplateBuilds(ctx, "tpl"); len(list) != 0 {
		t.Errorf("builds left: %v", buildIDs(list))
	}
	if list, _ := s.ListTemplateTags(ctx, "tpl"); len(list) != 0 {
		t.Errorf("tags left: %+v", list)
	}
	if _, err := s.GetTemplateBuild(ctx, "x"); err != nil {
		t.Errorf("another template's build: %v", err)
	}
	if _, err := s.GetTemplateTag(ctx, "other", "default"); err != nil {
		t.Errorf("another template's tag: %v", err)
	}
	if err := s.DeleteTemplateBuilds(ctx, "none"); err != nil {
		t.Errorf("deleting no builds: %v", err)
	}
}
