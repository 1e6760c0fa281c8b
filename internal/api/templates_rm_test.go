package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/apikey"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/store/sqlite"
)

func TestDeleteTemplate(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _, err := apikey.Create(ctx, st, apikey.Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	files := &fakeTemplateFiles{}
	srv := httptest.NewServer(New(Config{Orchestrator: &fakeOrch{}, Store: st, Templates: files}))
	t.Cleanup(srv.Close)
	now := time.Now().UTC()
	for _, tp := range []*store.Template{
		{ID: "tplbusy", TeamID: store.DefaultTeamID, Aliases: []string{"busy"}, BuildStatus: "ready", CreatedAt: now, UpdatedAt: now},
		{ID: "tplfree", TeamID: store.DefaultTeamID, Aliases: []string{"free"}, BuildStatus: "ready", CreatedAt: now, UpdatedAt: now},
		{ID: "tpldone", TeamID: store.DefaultTeamID, Aliases: []string{"done"}, BuildStatus: "ready", CreatedAt: now, UpdatedAt: now},
	} {
		if err := st.PutTemplate(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	for _, sb := range []*store.Sandbox{
		{ID: "iuser", TemplateID: "tplbusy", State: store.StateRunning, StartedAt: now, EndAt: now.Add(time.Minute), UpdatedAt: now},
		{ID: "ikilled", TemplateID: "tpldone", State: store.StateKilled, StartedAt: now, EndAt: now, UpdatedAt: now},
	} {
		if err := st.CreateSandbox(ctx, sb); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name, key, ref string
		status         int
		bodyHas        string
	}{
		{"no key", "", "free", http.StatusUnauthorized, ""},
		{"unknown", key, "nope", http.StatusNotFound, "not found"},
		{"in use", key, "busy", http.StatusConflict, "iuser"},
		{"in use by id", key, "tplbusy", http.StatusConflict, "iuser"},
		{"free by alias", key, "free", http.StatusNoContent, ""},
		{"already deleted", key, "free", http.StatusNotFound, ""},
		{"only killed sandboxes", key, "tpldone", http.StatusNoContent, ""},
	}
	for _, tt := range tests {
		resp, body := do(t, srv, tt.key, http.MethodDelete, "/templates/"+tt.ref, "")
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.bodyHas) {
			t.Errorf("%s: DELETE /templates/%s = %d %s, want %d containing %q", tt.name, tt.ref, resp.StatusCode, body, tt.status, tt.bodyHas)
		}
	}
	if _, err := st.GetTemplate(ctx, "tplbusy"); err != nil {
		t.Errorf("template in use was removed: %v", err)
	}
	if got := strings.Join(files.removed, ","); got != "tplfree,tpldone" {
		t.Errorf("files removed for %q, want tplfree,tpldone", got)
	}
	_, body := do(t, srv, key, http.MethodGet, "/templates", "")
	if strings.Contains(string(body), "tplfree") || !strings.Contains(string(body), "tplbusy") {
		t.Errorf("GET /templates after delete = %s", body)
	}
}

type fakeTemplateFiles struct{ removed []string }

func (f *fakeTemplateFiles) RemoveFiles(t *store.Template) error {
	f.removed = append(f.removed, t.ID)
	return nil
}
