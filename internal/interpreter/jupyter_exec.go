package interpreter

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

type executeContent struct {
	Code            string         `json:"code"`
	Silent          bool           `json:"silent"`
	StoreHistory    bool           `json:"store_history"`
	UserExpressions map[string]any `json:"user_expressions"`
	AllowStdin      bool           `json:"allow_stdin"`
	StopOnError     bool           `json:"stop_on_error"`
}

type iopubContent struct {
	ExecutionState string         `json:"execution_state"` // status
	Name           string         `json:"name"`            // stream
	Text           string         `json:"text"`            // stream
	Data           map[string]any `json:"data"`            // execute_result, display_data
	ExecutionCount int            `json:"execution_count"` // execute_input, execute_result, execute_reply
	Status         string         `json:"status"`          // execute_reply
	EName          string         `json:"ename"`           // error, execute_reply
	EValue         string         `json:"evalue"`
	Traceback      []string       `json:"traceback"`
}

func (c *iopubContent) execError() ExecError {
	return ExecError{Name: c.EName, Value: c.EValue, Traceback: strings.Join(c.Traceback, "\n")}
}

// execute runs code and streams its outputs until the kernel reports idle
// and the execute_reply arrived. Cancelling ctx interrupts the kernel; if it
// does not come back, the process is killed and ErrKernelDied returned.
func (p *jupyterProc) execute(ctx context.Context, code string, out Emitter, interruptMode string) error {
	// stop_on_error would make the kernel abort requests queued behind a
	// failed cell (also the one right after an interrupt); executions are
	// serialised here, so there is never a queue worth aborting.
	id, w, err := p.request(p.shell, "execute_request", executeContent{
		Code: code, StoreHistory: true, UserExpressions: map[string]any{}, StopOnError: false,
	})
	if err != nil {
		return err
	}
	defer p.forget(id)

	var (
		idle, replied, errored bool
		interruptedAt          time.Time
		retry                  <-chan time.Time
		done                   = ctx.Done()
	)
	for !idle || !replied {
		select {
		case m := <-w.ch:
			var c iopubContent
			if err := json.Unmarshal(m.Content, &c); err != nil {
				continue
			}
			switch m.Header.MsgType {
			case "status":
				idle = idle || c.ExecutionState == "idle"
			case "execute_input":
				out.ExecutionCount(c.ExecutionCount)
			case "stream":
				if c.Name == "stderr" {
					out.Stderr(c.Text, m.time())
				} else {
					out.Stdout(c.Text, m.time())
				}
			case "execute_result":
				out.Result(mimeResult(c.Data, true))
			case "display_data", "update_display_data":
				out.Result(mimeResult(c.Data, false))
			case "error":
				if !errored {
					errored = true
					out.Error(c.execError())
				}
			case "execute_reply":
				replied = true
				switch {
				case c.Status == "error" && !errored:
					errored = true
					out.Error(c.execError())
				case c.Status == "aborted" && !errored:
					errored = true
					out.Error(ExecError{Name: "ExecutionAborted", Value: "the kernel aborted the execution"})
				}
			}
		case <-done:
			// Interrupt, then keep draining until the kernel is idle again.
			done = nil
			interruptedAt = time.Now()
			p.interrupt(interruptMode)
			retry = time.After(jupyterInterruptGrace)
		case <-retry:
			if time.Since(interruptedAt) >= jupyterInterruptGiveUp {
				p.close()
				return fmt.Errorf("%w: kernel did not respond to an interrupt", ErrKernelDied)
			}
			p.interrupt(interruptMode)
			retry = time.After(jupyterInterruptGrace)
		case <-p.exited:
			return p.diedErr()
		}
	}
	if !interruptedAt.IsZero() {
		return ctx.Err()
	}
	return nil
}

// silent runs injected code without history or outputs; a failure of the
// code is returned as an error.
func (p *jupyterProc) silent(ctx context.Context, code string) error {
	ctx, cancel := context.WithTimeout(ctx, jupyterSilentTimeout)
	defer cancel()
	id, w, err := p.request(p.shell, "execute_request", executeContent{
		Code: code, Silent: true, UserExpressions: map[string]any{}, StopOnError: false,
	})
	if err != nil {
		return err
	}
	defer p.forget(id)
	var (
		idle, replied bool
		failure       error
	)
	for !idle || !replied {
		select {
		case m := <-w.ch:
			var c iopubContent
			if err := json.Unmarshal(m.Content, &c); err != nil {
				continue
			}
			switch m.Header.MsgType {
			case "status":
				idle = idle || c.ExecutionState == "idle"
			case "error":
				failure = fmt.Errorf("%s: %s", c.EName, c.EValue)
			case "execute_reply":
				replied = true
				if c.Status == "error" && failure == nil {
					failure = fmt.Errorf("%s: %s", c.EName, c.EValue)
				}
			}
		case <-ctx.Done():
			return fmt.Errorf("jupyter: injected code: %w", ctx.Err())
		case <-p.exited:
			return p.diedErr()
		}
	}
	return failure
}
