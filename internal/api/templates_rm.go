package api

import (
	"errors"
	"net/http"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// deleteTemplate removes a template by ID or alias, record and files. It
// refuses while live sandboxes use it, since their rootfs is built from the
// template's.
func (s *Server) deleteTemplate(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("id")
	t, err := s.cfg.Store.GetTemplate(r.Context(), ref)
	if err == nil && t.TeamID != callerTeam(r) && t.TeamID != "" {
		err = store.ErrNotFound // another team's template, public or not
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "template "+ref+" not found")
			return
		}
		s.fail(w, r, err)
		return
	}
	if t.TeamID == "" {
		writeError(w, http.StatusForbidden, "template "+ref+" is built in and cannot be deleted")
		return
	}
	live, _, err := s.cfg.Store.ListSandboxes(r.Context(), store.SandboxFilter{
		States:     []store.SandboxState{store.StateCreating, store.StateRunning, store.StatePaused},
		TemplateID: t.ID,
		Limit:      1,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(live) > 0 {
		writeError(w, http.StatusConflict, "template "+ref+" is in use by sandbox "+live[0].ID+"; kill its sandboxes first")
		return
	}
	if err := s.cfg.Store.DeleteTemplate(r.Context(), t.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "template "+ref+" not found")
			return
		}
		s.fail(w, r, err)
		return
	}
	if err := s.cfg.Store.DeleteTemplateBuilds(r.Context(), t.ID); err != nil {
		s.log.Error("remove template builds", "template", t.ID, "err", err)
	}
	// The record is gone, so the template no longer exists for anyone; a
	// file that cannot be removed is the operator's to clean, not an error
	// for the client.
	if s.cfg.Templates != nil {
		if err := s.cfg.Templates.RemoveFiles(t); err != nil {
			s.log.Error("remove template files", "template", t.ID, "err", err)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
