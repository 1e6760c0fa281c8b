package sandbox

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// NDJSON framing of /execute responses: any bytes are applied or refused
// with an error, never a panic; well-formed stdout lines keep their text.
func FuzzReadExecution(f *testing.F) {
	f.Add([]byte(`{"type":"number_of_executions","execution_count":1}` + "\n" + `{"type":"stdout","text":"hi\n","timestamp":"2024-01-01T00:00:00Z"}` + "\n" + `{"type":"end_of_execution"}` + "\n"))
	f.Add([]byte(`{"type":"result","text":"2","is_main_result":true,"png":"AAAA","chart":{"type":"line","elements":[]}}`))
	f.Add([]byte(`{"type":"error","name":"E","value":"v","traceback":"t"}` + "\n\n\n"))
	f.Add([]byte("{\"type\":\"stdout\",\"text\":\"no newline at the end\"}"))
	f.Add([]byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var exec Execution
		var seen []string
		opts := &RunCodeOptions{OnStdout: func(m OutputMessage) { seen = append(seen, m.Line) }}
		_ = readExecution(bytes.NewReader(data), &exec, opts)
		if len(seen) != len(exec.Logs.Stdout) {
			t.Fatalf("callback saw %d stdout lines, execution has %d", len(seen), len(exec.Logs.Stdout))
		}
	})
}

func FuzzStdoutLine(f *testing.F) {
	f.Add("hello\n")
	f.Add("")
	f.Add("\u2028\r\n{}")
	f.Fuzz(func(t *testing.T, text string) {
		line, err := json.Marshal(map[string]string{"type": "stdout", "text": text})
		if err != nil {
			return
		}
		var exec Execution
		if err := readExecution(strings.NewReader(string(line)+"\n"), &exec, &RunCodeOptions{}); err != nil {
			t.Fatal(err)
		}
		var back map[string]string // what the line says, after JSON's own repair of invalid UTF-8
		if err := json.Unmarshal(line, &back); err != nil {
			t.Fatal(err)
		}
		want := back["text"]
		if len(exec.Logs.Stdout) != 1 || exec.Logs.Stdout[0] != want {
			t.Fatalf("stdout %q came back as %q", text, exec.Logs.Stdout)
		}
	})
}
