package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/internal/orchestrator"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/sdk/controlapi"
	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// clientID is a deprecated field the SDKs still require; infra sends this constant.
const clientID = "6532622b"

func (s *Server) domain() *string {
	if s.cfg.Domain == "" {
		return nil
	}
	d := s.cfg.Domain
	return &d
}

func (s *Server) toSandbox(sb *store.Sandbox) controlapi.Sandbox {
	out := controlapi.Sandbox{
		TemplateID:      sb.TemplateID,
		SandboxID:       sb.ID,
		ClientID:        clientID,
		Alias:           sb.Alias,
		EnvdVersion:     orchestrator.EnvdVersion,
		EnvdAccessToken: sb.AccessToken,
		Domain:          s.domain(),
	}
	if sb.TrafficToken != "" {
		t := sb.TrafficToken
		out.TrafficAccessToken = &t
	}
	return out
}

// wireState reports only "running" or "paused": the Python SDK rejects others.
func wireState(st store.SandboxState) controlapi.SandboxState {
	if st == store.StateRunning {
		return controlapi.SandboxStateRunning
	}
	return controlapi.SandboxStatePaused
}

func toListed(sb *store.Sandbox) controlapi.ListedSandbox {
	return controlapi.ListedSandbox{
		TemplateID:  sb.TemplateID,
		SandboxID:   sb.ID,
		ClientID:    clientID,
		Alias:       sb.Alias,
		StartedAt:   sb.StartedAt.UTC(),
		EndAt:       sb.EndAt.UTC(),
		CpuCount:    sb.CPUCount,
		MemoryMB:    sb.MemoryMB,
		DiskSizeMB:  sb.DiskSizeMB,
		State:       wireState(sb.State),
		EnvdVersion: orchestrator.EnvdVersion,
		Metadata:    sb.Metadata,
		Runtime:     sb.Runtime,
	}
}

// unsupported names the first field of b that Airlock cannot honour yet.
func unsupported(b controlapi.NewSandbox) string {
	set := func(m json.RawMessage) bool {
		v := strings.TrimSpace(string(m))
		return v != "" && v != "null"
	}
	switch {
	case b.AutoPauseMemory != nil && !*b.AutoPauseMemory:
		return "autoPauseMemory: false (filesystem-only pause)"
	case set(b.AutoResume) && strings.Contains(strings.ReplaceAll(string(b.AutoResume), " ", ""), `"enabled":true`):
		return "autoResume"
	case set(b.Mcp):
		return "mcp"
	case set(b.VolumeMounts) && strings.TrimSpace(string(b.VolumeMounts)) != "[]":
		return "volumeMounts"
	case set(b.Iam):
		return "iam"
	case b.Network != nil && b.Network.MaskRequestHost != "":
		return "network.maskRequestHost"
	}
	return ""
}

// defaultCreateTimeout is the spec's default when a client sends none.
const defaultCreateTimeout = 15 * time.Second

func (s *Server) createSandbox(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var body controlapi.NewSandbox
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := createRequest(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req.Team = callerTeam(r)
	tm := &orchestrator.Timings{}
	sb, err := s.cfg.Orchestrator.Create(orchestrator.WithTimings(r.Context(), tm), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The per-phase breakdown, for `airlock bench`; "api" is the handler's own share.
	tm.Add("api", time.Since(start)-tm.Total())
	w.Header().Set(wire.HeaderAirlockTiming, tm.String())
	writeJSON(w, http.StatusCreated, s.toSandbox(sb))
}

// createRequest validates a create body and applies E2B's defaults.
func createRequest(b controlapi.NewSandbox) (orchestrator.CreateRequest, error) {
	req := orchestrator.CreateRequest{
		Template:      strings.TrimSpace(b.TemplateID),
		Timeout:       defaultCreateTimeout,
		Metadata:      b.Metadata,
		EnvVars:       b.EnvVars,
		AllowInternet: true,
		AutoPause:     b.AutoPause,
		PublicTraffic: true,
		Runtime:       b.Runtime,
		// Secure unless asked otherwise, as the SDKs default: a raw API
		// client that omits the field must not get an open envd.
		Secure: true,
	}
	if req.Template == "" {
		return req, fmt.Errorf("%w: templateID is required", orchestrator.ErrInvalid)
	}
	if f := unsupported(b); f != "" {
		return req, fmt.Errorf("%w: %s is not supported by Airlock yet", orchestrator.ErrInvalid, f)
	}
	if b.Timeout != nil {
		if *b.Timeout <= 0 {
			return req, fmt.Errorf("%w: timeout must be a positive number of seconds", orchestrator.ErrInvalid)
		}
		req.Timeout = time.Duration(*b.Timeout) * time.Second
	}
	if b.Secure != nil {
		req.Secure = *b.Secure
	}
	if b.AllowInternetAccess != nil {
		req.AllowInternet = *b.AllowInternetAccess
	}
	if n := b.Network; n != nil {
		if n.AllowPublicTraffic != nil && !*n.AllowPublicTraffic {
			if !req.Secure {
				return req, fmt.Errorf("%w: network.allowPublicTraffic=false requires secure: true", orchestrator.ErrInvalid)
			}
			req.PublicTraffic = false
		}
		var err error
		if req.Network.AllowOut, err = parsePrefixes("allowOut", n.AllowOut); err != nil {
			return req, err
		}
		if req.Network.DenyOut, err = parsePrefixes("denyOut", n.DenyOut); err != nil {
			return req, err
		}
	}
	if err := checkMap("metadata", b.Metadata, maxMetadata, maxMetadataKey, maxMetadataValue); err != nil {
		return req, err
	}
	if err := checkMap("envVars", b.EnvVars, maxEnvVars, maxEnvKey, maxEnvValue); err != nil {
		return req, err
	}
	for k := range b.EnvVars {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return req, fmt.Errorf("%w: invalid environment variable name %q", orchestrator.ErrInvalid, k)
		}
	}
	for _, v := range b.EnvVars {
		if strings.ContainsRune(v, 0) {
			return req, fmt.Errorf("%w: environment variable values must not contain NUL bytes", orchestrator.ErrInvalid)
		}
	}
	return req, nil
}

// Bounds of metadata and env vars: they are stored, listed and copied into
// every process, so a create cannot carry unbounded amounts of them.
const (
	maxMetadata      = 64
	maxMetadataKey   = 256
	maxMetadataValue = 4 << 10
	maxEnvVars       = 256
	maxEnvKey        = 256
	maxEnvValue      = 32 << 10
)

func checkMap(field string, m map[string]string, maxN, maxKey, maxValue int) error {
	if len(m) > maxN {
		return fmt.Errorf("%w: %s has %d entries; at most %d are allowed", orchestrator.ErrInvalid, field, len(m), maxN)
	}
	for k, v := range m {
		if len(k) > maxKey {
			return fmt.Errorf("%w: %s key %.32q… is longer than %d bytes", orchestrator.ErrInvalid, field, k, maxKey)
		}
		if len(v) > maxValue {
			return fmt.Errorf("%w: %s value of %.32q is longer than %d bytes", orchestrator.ErrInvalid, field, k, maxValue)
		}
	}
	return nil
}

// parsePrefixes accepts IPs and CIDRs. Domain rules need an egress proxy,
// which Airlock does not have yet, so they are refused rather than ignored.
func parsePrefixes(field string, in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range in {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(v); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		return nil, fmt.Errorf("%w: network.%s entry %q is not an IP or CIDR (domain rules are not supported)", orchestrator.ErrInvalid, field, v)
	}
	return out, nil
}

func (s *Server) getSandbox(w http.ResponseWriter, r *http.Request) {
	sb, err := s.cfg.Orchestrator.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	allow := sb.AllowInternet
	onTimeout := controlapi.SandboxLifecycleOnTimeoutKill
	if sb.AutoPause {
		onTimeout = controlapi.SandboxLifecycleOnTimeoutPause
	}
	l := toListed(sb)
	writeJSON(w, http.StatusOK, controlapi.SandboxDetail{
		TemplateID: l.TemplateID, SandboxID: l.SandboxID, ClientID: l.ClientID, Alias: l.Alias,
		StartedAt: l.StartedAt, EndAt: l.EndAt, CpuCount: l.CpuCount, MemoryMB: l.MemoryMB,
		DiskSizeMB: l.DiskSizeMB, State: l.State, EnvdVersion: l.EnvdVersion, Metadata: l.Metadata,
		Runtime:             l.Runtime,
		EnvdAccessToken:     sb.AccessToken,
		AllowInternetAccess: &allow,
		Domain:              s.domain(),
		Lifecycle:           controlapi.SandboxLifecycle{OnTimeout: onTimeout},
	})
}

func (s *Server) killSandbox(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Orchestrator.Kill(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) setTimeout(w http.ResponseWriter, r *http.Request) {
	var body controlapi.Timeout
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	if body.Timeout == nil {
		s.fail(w, r, fmt.Errorf("%w: timeout is required", orchestrator.ErrInvalid))
		return
	}
	if err := s.cfg.Orchestrator.SetTimeout(r.Context(), r.PathValue("id"), time.Duration(*body.Timeout)*time.Second); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	var body controlapi.Refresh
	if r.ContentLength != 0 {
		if err := decode(r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	d := int64(15)
	if body.Duration != nil {
		if *body.Duration < 0 || *body.Duration > 3600 {
			s.fail(w, r, fmt.Errorf("%w: duration must be between 0 and 3600 seconds", orchestrator.ErrInvalid))
			return
		}
		d = max(*body.Duration, 15)
	}
	if err := s.cfg.Orchestrator.Refresh(r.Context(), r.PathValue("id"), time.Duration(d)*time.Second); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	var body controlapi.Timeout
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	if body.Timeout == nil || *body.Timeout < 0 {
		s.fail(w, r, fmt.Errorf("%w: timeout is required and must not be negative", orchestrator.ErrInvalid))
		return
	}
	sb, resumed, err := s.cfg.Orchestrator.Connect(r.Context(), r.PathValue("id"), time.Duration(*body.Timeout)*time.Second)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if resumed {
		status = http.StatusCreated
	}
	writeJSON(w, status, s.toSandbox(sb))
}

// resume is the deprecated endpoint: like connect, but 409 when running.
func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	var body controlapi.Timeout
	if r.ContentLength != 0 {
		if err := decode(r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	id := r.PathValue("id")
	cur, err := s.cfg.Orchestrator.Get(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if cur.State == store.StateRunning {
		writeError(w, http.StatusConflict, "sandbox "+id+" is already running")
		return
	}
	t := int64(15)
	if body.Timeout != nil {
		t = *body.Timeout
	}
	sb, _, err := s.cfg.Orchestrator.Connect(r.Context(), id, time.Duration(t)*time.Second)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.toSandbox(sb))
}

func (s *Server) pause(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Orchestrator.Pause(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listSandboxesV1 is the deprecated unpaginated list of running sandboxes.
func (s *Server) listSandboxesV1(w http.ResponseWriter, r *http.Request) {
	f := store.SandboxFilter{States: []store.SandboxState{store.StateRunning}, TeamID: callerTeam(r)}
	if md := r.URL.Query().Get("metadata"); md != "" {
		m, err := parseMetadataQuery(md)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		f.Metadata = m
	}
	list, _, err := s.cfg.Orchestrator.List(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]controlapi.ListedSandbox, 0, len(list))
	for _, sb := range list {
		out = append(out, toListed(sb))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listSandboxesV2(w http.ResponseWriter, r *http.Request) {
	f, err := parseListQuery(r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f.TeamID = callerTeam(r)
	list, next, err := s.cfg.Orchestrator.List(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if next != nil {
		w.Header().Set("X-Next-Token", encodeCursor(*next))
	}
	out := make([]controlapi.ListedSandbox, 0, len(list))
	for _, sb := range list {
		out = append(out, toListed(sb))
	}
	writeJSON(w, http.StatusOK, out)
}

// parseListQuery validates GET /v2/sandboxes parameters.
func parseListQuery(q url.Values) (store.SandboxFilter, error) {
	f := store.SandboxFilter{Limit: 100}
	if v := q.Get("state"); v != "" {
		for _, st := range strings.Split(v, ",") {
			switch strings.TrimSpace(st) {
			case "running":
				f.States = append(f.States, store.StateRunning)
			case "paused":
				f.States = append(f.States, store.StatePaused)
			default:
				return f, fmt.Errorf("%w: invalid state %q (want running or paused)", orchestrator.ErrInvalid, st)
			}
		}
	}
	if v := q.Get("metadata"); v != "" {
		m, err := parseMetadataQuery(v)
		if err != nil {
			return f, err
		}
		f.Metadata = m
	}
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		f.Ascending = true
	default:
		return f, fmt.Errorf("%w: order must be asc or desc", orchestrator.ErrInvalid)
	}
	if v := q.Get("startedAfter"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return f, fmt.Errorf("%w: startedAfter: %v", orchestrator.ErrInvalid, err)
		}
		f.StartedAfter = t
	}
	if v := q.Get("template"); v != "" {
		if strings.Contains(v, ":") {
			return f, fmt.Errorf("%w: template filter must not contain a tag", orchestrator.ErrInvalid)
		}
		f.TemplateID = v
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return f, fmt.Errorf("%w: limit must be between 1 and 100", orchestrator.ErrInvalid)
		}
		f.Limit = n
	}
	if v := q.Get("nextToken"); v != "" {
		c, err := decodeCursor(v)
		if err != nil {
			return f, err
		}
		f.After = &c
	}
	return f, nil
}

// parseMetadataQuery decodes the SDKs' double-encoded "k=v&k2=v2" filter.
func parseMetadataQuery(v string) (map[string]string, error) {
	raw, err := url.QueryUnescape(v)
	if err != nil {
		return nil, fmt.Errorf("%w: metadata filter: %v", orchestrator.ErrInvalid, err)
	}
	out := map[string]string{}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		kv := strings.Split(pair, "=")
		if len(kv) != 2 {
			return nil, fmt.Errorf("%w: metadata filter pair %q is not key=value", orchestrator.ErrInvalid, pair)
		}
		k, err1 := url.QueryUnescape(kv[0])
		val, err2 := url.QueryUnescape(kv[1])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%w: metadata filter: %v", orchestrator.ErrInvalid, err)
		}
		out[k] = val
	}
	return out, nil
}

func parseTime(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", v)
}

// Cursors are opaque to clients: base64url("<RFC3339Nano>__<id>").
func encodeCursor(c store.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.StartedAt.UTC().Format(time.RFC3339Nano) + "__" + c.ID))
}

func decodeCursor(v string) (store.Cursor, error) {
	bad := fmt.Errorf("%w: invalid nextToken", orchestrator.ErrInvalid)
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
	if err != nil {
		return store.Cursor{}, bad
	}
	ts, id, ok := strings.Cut(string(raw), "__")
	if !ok || id == "" {
		return store.Cursor{}, bad
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return store.Cursor{}, bad
	}
	return store.Cursor{StartedAt: t, ID: id}, nil
}

// metrics returns the current sample; Airlock keeps no metric history yet,
// so the series has one point.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	var bounds [2]time.Time
	for i, name := range []string{"start", "end"} {
		v := r.URL.Query().Get(name)
		if v == "" {
			continue
		}
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec < 0 {
			s.fail(w, r, fmt.Errorf("%w: %s must be unix seconds", orchestrator.ErrInvalid, name))
			return
		}
		bounds[i] = time.Unix(sec, 0)
	}
	if !bounds[0].IsZero() && !bounds[1].IsZero() && bounds[0].After(bounds[1]) {
		s.fail(w, r, fmt.Errorf("%w: start is after end", orchestrator.ErrInvalid))
		return
	}
	samples, err := s.cfg.Orchestrator.Metrics(r.Context(), r.PathValue("id"), bounds[0], bounds[1])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]controlapi.SandboxMetric, 0, len(samples))
	for _, m := range samples {
		out = append(out, controlapi.SandboxMetric{
			Timestamp:     m.At.UTC(),
			TimestampUnix: m.At.Unix(),
			CpuCount:      m.CPUCount,
			CpuUsedPct:    m.CPUUsedPct,
			MemUsed:       m.MemUsed,
			MemTotal:      m.MemTotal,
			MemCache:      m.MemCache,
			DiskUsed:      m.DiskUsed,
			DiskTotal:     m.DiskTotal,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since time.Time
	if v := q.Get("start"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.fail(w, r, fmt.Errorf("%w: start must be unix milliseconds", orchestrator.ErrInvalid))
			return
		}
		since = time.UnixMilli(ms).UTC()
	}
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(w, r, fmt.Errorf("%w: limit must be a non-negative integer", orchestrator.ErrInvalid))
			return
		}
		limit = min(n, 1000)
	}
	events, err := s.cfg.Orchestrator.Events(r.Context(), r.PathValue("id"), since, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := controlapi.SandboxLogs{Logs: []controlapi.SandboxLog{}, LogEntries: []controlapi.SandboxLogEntry{}}
	for _, e := range events {
		line := fmt.Sprintf(`{"level":%q,"msg":%q}`, e.Level, e.Message)
		out.Logs = append(out.Logs, controlapi.SandboxLog{Timestamp: e.Time, Line: line})
		out.LogEntries = append(out.LogEntries, controlapi.SandboxLogEntry{Timestamp: e.Time, Level: e.Level, Message: e.Message, Fields: map[string]string{}})
	}
	writeJSON(w, http.StatusOK, out)
}
