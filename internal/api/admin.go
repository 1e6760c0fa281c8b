package api

import (
	"net/http"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// Operator-only routes (admin keys): every team's sandboxes and usage.

type adminTeamJSON struct {
	TeamID           string `json:"teamID"`
	Name             string `json:"name"`
	RunningSandboxes int    `json:"runningSandboxes"`
	PausedSandboxes  int    `json:"pausedSandboxes"`
	MemoryMB         int    `json:"memoryMB"` // of the running sandboxes
}

func (s *Server) adminTeams(w http.ResponseWriter, r *http.Request) {
	teams, err := s.cfg.Store.ListTeams(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	live, _, err := s.cfg.Orchestrator.List(r.Context(), store.SandboxFilter{})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	byTeam := map[string]*adminTeamJSON{}
	out := make([]*adminTeamJSON, 0, len(teams))
	for _, t := range teams {
		tj := &adminTeamJSON{TeamID: t.ID, Name: t.Name}
		byTeam[t.ID] = tj
		out = append(out, tj)
	}
	for _, sb := range live {
		tj, ok := byTeam[sb.TeamID]
		if !ok {
			continue
		}
		if sb.State == store.StateRunning {
			tj.RunningSandboxes++
			tj.MemoryMB += sb.MemoryMB
		} else {
			tj.PausedSandboxes++
		}
	}
	writeJSON(w, http.StatusOK, out)
}

type adminSandboxJSON struct {
	listedJSON
	TeamID string `json:"teamID"`
}

func (s *Server) adminSandboxes(w http.ResponseWriter, r *http.Request) {
	live, _, err := s.cfg.Orchestrator.List(r.Context(), store.SandboxFilter{})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]adminSandboxJSON, 0, len(live))
	for _, sb := range live {
		out = append(out, adminSandboxJSON{listedJSON: toListed(sb), TeamID: sb.TeamID})
	}
	writeJSON(w, http.StatusOK, out)
}
