package api

import (
	"net/http"

	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/sdk/controlapi"
)

// Operator-only routes (admin keys): every team's sandboxes and usage.

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
	byTeam := map[string]*controlapi.AdminTeam{}
	out := make([]*controlapi.AdminTeam, 0, len(teams))
	for _, t := range teams {
		tj := &controlapi.AdminTeam{TeamID: t.ID, Name: t.Name}
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

func (s *Server) adminSandboxes(w http.ResponseWriter, r *http.Request) {
	live, _, err := s.cfg.Orchestrator.List(r.Context(), store.SandboxFilter{})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]controlapi.AdminSandbox, 0, len(live))
	for _, sb := range live {
		out = append(out, adminSandbox(sb))
	}
	writeJSON(w, http.StatusOK, out)
}

func adminSandbox(sb *store.Sandbox) controlapi.AdminSandbox {
	l := toListed(sb)
	return controlapi.AdminSandbox{
		TemplateID: l.TemplateID, SandboxID: l.SandboxID, ClientID: l.ClientID, Alias: l.Alias,
		StartedAt: l.StartedAt, EndAt: l.EndAt, CpuCount: l.CpuCount, MemoryMB: l.MemoryMB,
		DiskSizeMB: l.DiskSizeMB, State: l.State, EnvdVersion: l.EnvdVersion, Metadata: l.Metadata,
		Runtime: l.Runtime, TeamID: sb.TeamID,
	}
}
