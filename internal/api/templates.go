package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/airlock-sandbox/airlock/internal/builder"
	"github.com/airlock-sandbox/airlock/internal/orchestrator"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/sdk/controlapi"
)

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Store.ListTemplates(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	team := callerTeam(r)
	out := make([]controlapi.Template, 0, len(list))
	for _, t := range list {
		// The team's own templates and the built-in ones, which all may use.
		if t.TeamID != team && t.TeamID != "" {
			continue
		}
		buildID := t.BuildID
		if buildID == "" {
			buildID = t.ID // built-in and CLI-built templates have one build
		}
		tj := controlapi.Template{
			TemplateID:  t.ID,
			BuildID:     buildID,
			CpuCount:    t.CPUCount,
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
			Runtime:     t.Runtime,
		}
		if !t.LastSpawnAt.IsZero() {
			ls := t.LastSpawnAt
			tj.LastSpawnedAt = &ls
		}
		out = append(out, tj)
	}
	writeJSON(w, http.StatusOK, out)
}

// templateAliasOrTags serves GET /templates/aliases/{alias} and
// GET /templates/{id}/tags, which share one mux pattern.
func (s *Server) templateAliasOrTags(w http.ResponseWriter, r *http.Request) {
	switch id, sub := r.PathValue("id"), r.PathValue("sub"); {
	case id == "aliases":
		s.templateAlias(w, r, sub)
	case sub == "tags":
		s.listTags(w, r, id)
	default:
		writeError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
	}
}

// templateAlias says whether a name (optionally name:tag) is taken. As on
// E2B, a name another team holds answers 403, which the SDKs' exists reads
// as "exists": names are one namespace, and building under it fails too.
func (s *Server) templateAlias(w http.ResponseWriter, r *http.Request, alias string) {
	name, tag := alias, ""
	if i := strings.LastIndexByte(alias, ':'); i >= 0 {
		name, tag = alias[:i], alias[i+1:]
	}
	t, err := s.cfg.Store.GetTemplate(r.Context(), name)
	if err == nil && tag != "" && tag != builder.DefaultTag {
		_, err = s.cfg.Store.GetTemplateTag(r.Context(), t.ID, tag)
	}
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "template alias "+alias+" not found")
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if t.TeamID != "" && t.TeamID != callerTeam(r) && !t.Public {
		writeError(w, http.StatusForbidden, "template alias "+alias+" belongs to another team")
		return
	}
	writeJSON(w, http.StatusOK, controlapi.TemplateAlias{TemplateID: t.ID, Public: t.Public})
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
