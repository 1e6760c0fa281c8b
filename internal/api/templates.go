package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/airlock-sandbox/airlock/internal/orchestrator"
	"github.com/airlock-sandbox/airlock/internal/store"
)

// templateJSON is E2B's `Template` (CLI `template list`); all fields required.
type templateJSON struct {
	TemplateID    string     `json:"templateID"`
	BuildID       string     `json:"buildID"`
	CPUCount      int        `json:"cpuCount"`
	MemoryMB      int        `json:"memoryMB"`
	DiskSizeMB    int        `json:"diskSizeMB"`
	Public        bool       `json:"public"`
	Aliases       []string   `json:"aliases"`
	Names         []string   `json:"names"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	CreatedBy     *struct{}  `json:"createdBy"`
	LastSpawnedAt *time.Time `json:"lastSpawnedAt"`
	SpawnCount    int64      `json:"spawnCount"`
	BuildCount    int        `json:"buildCount"`
	EnvdVersion   string     `json:"envdVersion"`
	BuildStatus   string     `json:"buildStatus"`
}

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Store.ListTemplates(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	team := callerTeam(r)
	out := make([]templateJSON, 0, len(list))
	for _, t := range list {
		// The team's own templates and the built-in ones, which all may use.
		if t.TeamID != team && t.TeamID != "" {
			continue
		}
		tj := templateJSON{
			TemplateID:  t.ID,
			BuildID:     t.ID,
			CPUCount:    t.CPUCount,
			MemoryMB:    t.MemoryMB,
			DiskSizeMB:  t.DiskSizeMB,
			Public:      t.Public,
			Aliases:     nonNilSlice(t.Aliases),
			Names:       nonNilSlice(t.Aliases),
			CreatedAt:   t.CreatedAt,
			UpdatedAt:   t.UpdatedAt,
			SpawnCount:  t.SpawnCount,
			BuildCount:  1,
			EnvdVersion: orchestrator.EnvdVersion,
			BuildStatus: t.BuildStatus,
		}
		if !t.LastSpawnAt.IsZero() {
			ls := t.LastSpawnAt
			tj.LastSpawnedAt = &ls
		}
		out = append(out, tj)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) templateAlias(w http.ResponseWriter, r *http.Request) {
	t, err := s.visibleTemplate(r, r.PathValue("alias"))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "template alias "+r.PathValue("alias")+" not found")
			return
		}
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"templateID": t.ID, "public": t.Public})
}

// visibleTemplate finds a template the caller's team may see: its own, a
// built-in one, or one another team made public. Others do not exist for it.
func (s *Server) visibleTemplate(r *http.Request, ref string) (*store.Template, error) {
	t, err := s.cfg.Store.GetTemplate(r.Context(), ref)
	if err != nil {
		return nil, err
	}
	if t.TeamID != "" && t.TeamID != callerTeam(r) && !t.Public {
		return nil, fmt.Errorf("template %s: %w", ref, store.ErrNotFound)
	}
	return t, nil
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
