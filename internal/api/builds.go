package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/airlock-sandbox/airlock/internal/builder"
	"github.com/airlock-sandbox/airlock/internal/errdefs"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/sdk/controlapi"
)

// Builds is the template build service (builder.Service).
type Builds interface {
	Request(ctx context.Context, req builder.Request) (*builder.Requested, error)
	Start(ctx context.Context, team, templateID, buildID string, sp *builder.Spec) error
	Status(ctx context.Context, team, templateID, buildID string, offset, limit int, level string) (*builder.Status, error)
	FileLink(ctx context.Context, team, templateID, hash string) (bool, string, error)
	Upload(ctx context.Context, templateID, hash, token string, body io.Reader, size int64) error
	AssignTags(ctx context.Context, team, target string, tags []string) (string, []string, error)
	RemoveTags(ctx context.Context, team, name string, tags []string) error
	Tags(ctx context.Context, team, ref string) ([]*store.TemplateTag, error)
}

// errNoBuilds answers the build routes of a server without a builder.
var errNoBuilds = errdefs.Newf(errdefs.ErrNotSupported, "template builds are not implemented by this server (it was started without a builder)")

func (s *Server) builds(w http.ResponseWriter, r *http.Request) (Builds, bool) {
	if s.cfg.Builds == nil {
		s.fail(w, r, errNoBuilds)
		return nil, false
	}
	return s.cfg.Builds, true
}

func (s *Server) requestBuild(w http.ResponseWriter, r *http.Request) {
	b, ok := s.builds(w, r)
	if !ok {
		return
	}
	var body controlapi.TemplateBuildRequest
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	if body.Name == "" {
		body.Name = body.Alias
	}
	if body.Name == "" {
		s.fail(w, r, errdefs.Newf(errdefs.ErrInvalid, "name is required"))
		return
	}
	req, err := b.Request(r.Context(), builder.Request{
		Team: callerTeam(r), Name: body.Name, Tags: body.Tags, CPUCount: body.CpuCount, MemoryMB: body.MemoryMB,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, controlapi.TemplateBuildRequested{
		TemplateID: req.Template.ID, BuildID: req.Build.ID, Public: req.Template.Public,
		Names: []string{req.Alias}, Aliases: []string{req.Alias}, Tags: nonNilSlice(req.Tags),
	})
}

func (s *Server) startBuild(w http.ResponseWriter, r *http.Request) {
	b, ok := s.builds(w, r)
	if !ok {
		return
	}
	var sp builder.Spec
	if err := decode(r, &sp); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := b.Start(r.Context(), callerTeam(r), r.PathValue("id"), r.PathValue("buildID"), &sp); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) buildStatus(w http.ResponseWriter, r *http.Request) {
	b, ok := s.builds(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	offset, err1 := queryInt(q, "logsOffset")
	limit, err2 := queryInt(q, "limit")
	if err := errors.Join(err1, err2); err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := b.Status(r.Context(), callerTeam(r), r.PathValue("id"), r.PathValue("buildID"), offset, limit, q.Get("level"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	info := controlapi.TemplateBuildInfo{
		TemplateID: st.Build.TemplateID, BuildID: st.Build.ID,
		Status:     controlapi.TemplateBuildInfoStatus(st.Build.Status),
		Logs:       make([]string, 0, len(st.Entries)),
		LogEntries: logEntries(st.Entries),
	}
	for _, e := range st.Entries {
		info.Logs = append(info.Logs, fmt.Sprintf("[%s] %s", e.Time.Format(time.RFC3339), e.Message))
	}
	if st.Build.Status == store.BuildError {
		info.Reason = &controlapi.BuildStatusReason{Message: st.Build.Reason, Step: st.Build.ReasonStep}
	}
	writeJSON(w, http.StatusOK, info)
}

func logEntries(in []builder.LogEntry) []controlapi.BuildLogEntry {
	out := make([]controlapi.BuildLogEntry, 0, len(in))
	for _, e := range in {
		out = append(out, controlapi.BuildLogEntry{Timestamp: e.Time, Level: controlapi.BuildLogEntryLevel(e.Level), Message: e.Message, Step: e.Step})
	}
	return out
}

// buildLogs is E2B's paged build log: entries after cursor (ms since the
// epoch), forward or backward, at most limit (≤100).
func (s *Server) buildLogs(w http.ResponseWriter, r *http.Request) {
	b, ok := s.builds(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit, err := queryInt(q, "limit")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var cursor int64
	if c := q.Get("cursor"); c != "" {
		if cursor, err = strconv.ParseInt(c, 10, 64); err != nil {
			s.fail(w, r, errdefs.Newf(errdefs.ErrInvalid, "cursor %q is not a number", c))
			return
		}
	}
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	st, err := b.Status(r.Context(), callerTeam(r), r.PathValue("id"), r.PathValue("buildID"), 0, 1<<30, q.Get("level"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	all := st.Entries
	var page []builder.LogEntry
	if q.Get("direction") == "backward" {
		for i := len(all) - 1; i >= 0 && len(page) < limit; i-- {
			if cursor == 0 || all[i].Time.UnixMilli() <= cursor {
				page = append(page, all[i])
			}
		}
	} else {
		for _, e := range all {
			if len(page) < limit && e.Time.UnixMilli() >= cursor {
				page = append(page, e)
			}
		}
	}
	writeJSON(w, http.StatusOK, controlapi.TemplateBuildLogs{Logs: logEntries(page)})
}

func queryInt(q url.Values, name string) (int, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errdefs.Newf(errdefs.ErrInvalid, "%s %q is not a non-negative integer", name, v)
	}
	return n, nil
}

func (s *Server) fileLink(w http.ResponseWriter, r *http.Request) {
	b, ok := s.builds(w, r)
	if !ok {
		return
	}
	id, hash := r.PathValue("id"), r.PathValue("hash")
	present, token, err := b.FileLink(r.Context(), callerTeam(r), id, hash)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	link := controlapi.TemplateFileLink{Present: present}
	if !present {
		link.Url = requestBase(r) + "/templates/" + url.PathEscape(id) + "/files/" + hash + "?token=" + url.QueryEscape(token)
	}
	writeJSON(w, http.StatusCreated, link)
}

// requestBase is the scheme and host the client reached the API on, so an
// upload link works from where the client is.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

func (s *Server) uploadFiles(w http.ResponseWriter, r *http.Request) {
	b, ok := s.builds(w, r)
	if !ok {
		return
	}
	if r.ContentLength < 0 {
		s.fail(w, r, errdefs.Newf(errdefs.ErrInvalid, "an upload needs a Content-Length"))
		return
	}
	err := b.Upload(r.Context(), r.PathValue("id"), r.PathValue("hash"), r.URL.Query().Get("token"), r.Body, r.ContentLength)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) assignTags(w http.ResponseWriter, r *http.Request) {
	b, ok := s.builds(w, r)
	if !ok {
		return
	}
	var body controlapi.AssignTags
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	buildID, tags, err := b.AssignTags(r.Context(), callerTeam(r), body.Target, body.Tags)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, controlapi.AssignedTags{BuildID: buildID, Tags: tags})
}

func (s *Server) removeTags(w http.ResponseWriter, r *http.Request) {
	b, ok := s.builds(w, r)
	if !ok {
		return
	}
	var body controlapi.RemoveTags
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := b.RemoveTags(r.Context(), callerTeam(r), body.Name, body.Tags); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listTags(w http.ResponseWriter, r *http.Request, id string) {
	b, ok := s.builds(w, r)
	if !ok {
		return
	}
	tags, err := b.Tags(r.Context(), callerTeam(r), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]controlapi.TemplateTag, 0, len(tags))
	for _, t := range tags {
		out = append(out, controlapi.TemplateTag{Tag: t.Tag, BuildID: t.BuildID, CreatedAt: t.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}
