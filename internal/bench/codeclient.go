package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// codePort is the port of the code interpreter inside code-interpreter sandboxes.
var codePort = strconv.Itoa(wire.InterpreterPort)

var (
	// ErrNoEndOfExecution means an /execute stream ended before its
	// end_of_execution line.
	ErrNoEndOfExecution = errors.New("execute stream ended without end_of_execution")
	// ErrCodeFailed means the executed code raised an error (an "error" line).
	ErrCodeFailed = errors.New("code raised an error")
)

// executeLine holds the fields of an /execute NDJSON line the benchmark reads.
type executeLine struct {
	Type         string `json:"type"`
	Text         string `json:"text"`
	IsMainResult bool   `json:"is_main_result"`
	Name         string `json:"name"`
	Value        string `json:"value"`
}

// readExecution consumes an /execute NDJSON stream up to end_of_execution
// and returns the text of the main result ("" when there is none).
func readExecution(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20) // results may carry images
	var text string
	var codeErr error
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var l executeLine
		if err := json.Unmarshal(line, &l); err != nil {
			return text, fmt.Errorf("execute stream: bad line %q: %w", truncate(line, 80), err)
		}
		switch l.Type {
		case "result":
			if l.IsMainResult {
				text = l.Text
			}
		case "error":
			codeErr = fmt.Errorf("%w: %s: %s", ErrCodeFailed, l.Name, l.Value)
		case "end_of_execution":
			return text, codeErr
		}
	}
	if err := sc.Err(); err != nil {
		return text, fmt.Errorf("execute stream: %w", err)
	}
	return text, ErrNoEndOfExecution
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// RunCode runs Python code through the sandbox's code interpreter, like
// the SDK's runCode, and returns the main result's text.
func (c *Client) RunCode(ctx context.Context, sb *Sandbox, code string) (string, error) {
	body, err := json.Marshal(map[string]string{"code": code, "language": "python"})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/execute", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	c.envdHeaders(req.Header, sb)
	req.Header.Set("E2b-Sandbox-Port", codePort)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("runCode: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("%w: runCode: %d %s", errStatus, resp.StatusCode, bytes.TrimSpace(msg))
	}
	text, err := readExecution(resp.Body)
	// Drain so the connection is reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	return text, err
}

// templateState reports whether name (an ID or alias) is a ready template
// in tpls, and if not, why.
func templateState(tpls []Template, name string) (bool, string) {
	for _, t := range tpls {
		if t.ID != name && !contains(t.Aliases, name) {
			continue
		}
		// Servers that do not report a status only list usable templates.
		if t.BuildStatus == "" || t.BuildStatus == "ready" {
			return true, ""
		}
		return false, fmt.Sprintf("template %s is %s, not ready", name, t.BuildStatus)
	}
	return false, fmt.Sprintf("the server has no template %s", name)
}
