package interpreter

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// errUnauthorized means envd refused the presented access token.
var errUnauthorized = errors.New(wire.UnauthorizedMessage)

// tokenTTL is how long an accepted token is trusted without asking envd
// again; envd's token only changes when the orchestrator re-initialises it.
const tokenTTL = 10 * time.Second

// requireToken lets a request through only when envd accepts its
// X-Access-Token. The interpreter does not know the sandbox's token itself:
// envd holds it, so envd decides (and an unsecured sandbox, whose envd has
// no token, lets everything through, as E2B's does).
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env, err := s.authorize(r.Context(), r.Header.Get(wire.HeaderAccessToken))
		switch {
		case err == nil:
			if env != nil {
				r = r.WithContext(context.WithValue(r.Context(), fetchedEnvKey{}, env))
			}
			next.ServeHTTP(w, r)
		case errors.Is(err, errUnauthorized):
			writeError(w, http.StatusUnauthorized, wire.UnauthorizedMessage)
		default:
			s.log.Warn("cannot check the access token with envd", "err", err)
			writeError(w, http.StatusServiceUnavailable, "cannot check the access token: "+err.Error())
		}
	})
}

// authorize asks envd (by reading the sandbox env with the token) unless
// envd accepted the same token moments ago; it returns the env when it
// fetched it, so the execution need not fetch it again.
func (s *Server) authorize(ctx context.Context, token string) (map[string]string, error) {
	sum := sha256.Sum256([]byte(token))
	now := time.Now()
	s.mu.Lock()
	cached := token != "" && now.Before(s.tokenTill) && subtle.ConstantTimeCompare(sum[:], s.tokenOK[:]) == 1
	s.mu.Unlock()
	if cached {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, envdFetchTimeout)
	defer cancel()
	env, err := s.fetchEnvs(ctx, token)
	if err != nil {
		return nil, err
	}
	// An empty token is never cached: envd may be given one later.
	if token != "" {
		s.mu.Lock()
		s.tokenOK, s.tokenTill = sum, now.Add(tokenTTL)
		s.mu.Unlock()
	}
	if env == nil {
		env = map[string]string{}
	}
	return env, nil
}

// fetchedEnvKey carries the env that authorize read for this request.
type fetchedEnvKey struct{}

// writeError answers with E2B's {code, message} body.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{status, msg})
}
