package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A real server with small team limits answers 429 with E2B's body, per
// team, and makes room again when a sandbox goes.
func TestTeamLimits(t *testing.T) {
	s := startServer(t, runtimeRunc, "", "--team-max-sandboxes", "2", "--team-creates-per-second", "0")
	a := s.create(t, map[string]any{"timeout": 120})
	b := s.create(t, map[string]any{"timeout": 120})
	defer b.kill(t)

	code, body := s.api("POST", "/sandboxes", map[string]any{"templateID": "base", "timeout": 120})
	if code != http.StatusTooManyRequests {
		t.Fatalf("third create of a team limited to 2: %d %s", code, body)
	}
	var eb struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &eb); err != nil || eb.Code != 429 || !strings.Contains(eb.Message, "maximum number of concurrent sandboxes") {
		t.Errorf("429 body: %s", body)
	}
	a.kill(t)
	c := s.create(t, map[string]any{"timeout": 120})
	c.kill(t)

	// Oversized headers and bodies get their statuses from the real server too.
	req, _ := http.NewRequest("GET", "http://"+s.addr+"/v2/sandboxes", nil)
	req.Header.Set("X-API-KEY", s.key)
	req.Header.Set("X-Pad", strings.Repeat("p", 70<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("70 KiB header: %d", resp.StatusCode)
	}
	code, body = s.api("POST", "/sandboxes", map[string]any{"templateID": "base", "envVars": map[string]string{"A": strings.Repeat("x", 2<<20)}})
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB create body: %d %s", code, body)
	}
}
