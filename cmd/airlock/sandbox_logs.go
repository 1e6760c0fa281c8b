package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// logPollInterval is how often `logs --follow` asks for new lines.
const logPollInterval = time.Second

func newSandboxLogsCmd(f *clientFlags) *cobra.Command {
	var follow bool
	var since string
	cmd := &cobra.Command{
		Use:               "logs ID",
		ValidArgsFunction: completeSandboxIDs(f, true),
		Short:             "Show a sandbox's lifecycle log",
		Example: `  airlock sandbox logs $id
  airlock sandbox logs --follow $id
  airlock sandbox logs --since 10m --json $id`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var start time.Time
			if since != "" {
				d, err := parseTimeout("since", since)
				if err != nil {
					return err
				}
				start = time.Now().Add(-d)
			}
			return streamLogs(cmd.Context(), f, args[0], start, follow, outOf(cmd))
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the sandbox is gone or Ctrl-C")
	cmd.Flags().StringVar(&since, "since", "", "only lines newer than this, e.g. 10m")
	return cmd
}

// streamLogs prints log lines from start on; with follow it polls until the
// sandbox is gone or ctx ends.
func streamLogs(ctx context.Context, f *clientFlags, id string, start time.Time, follow bool, w io.Writer) error {
	type lineKey struct {
		ts         time.Time
		level, msg string
	}
	seen := map[lineKey]bool{} // lines at the last timestamp, since start is inclusive
	c, _ := f.client()
	for {
		entries, err := c.Logs(ctx, id, sandbox.LogOptions{Since: start})
		if err != nil {
			if follow && ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("logs of %s: %w", id, err)
		}
		for _, e := range entries {
			key := lineKey{e.Timestamp, e.Level, e.Message}
			if seen[key] {
				continue
			}
			if e.Timestamp.After(start) {
				start = e.Timestamp
				clear(seen)
			}
			seen[key] = true
			if err := printLogEntry(w, f.json, e); err != nil {
				return err
			}
		}
		if !follow {
			return nil
		}
		if _, err := c.GetInfo(ctx, id); errors.Is(err, sandbox.ErrNotFound) {
			return nil // killed: its last lines were printed above
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(logPollInterval):
		}
	}
}

// printLogEntry writes one line: JSON lines for scripts, text for people.
func printLogEntry(w io.Writer, asJSON bool, e sandbox.LogEntry) error {
	if asJSON {
		return printCompactJSON(w, e)
	}
	_, err := fmt.Fprintf(w, "%s  %-5s  %s\n", e.Timestamp.Local().Format(time.RFC3339), e.Level, e.Message)
	return err
}

func newSandboxMetricsCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "metrics ID",
		ValidArgsFunction: completeSandboxIDs(f, true),
		Short:             "Show a sandbox's CPU, memory and disk usage",
		Example:           "  airlock sandbox metrics $id\n  airlock sandbox metrics --json $id | jq '.[0].memUsed'",
		Args:              exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _ := f.client()
			ms, err := c.Metrics(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("metrics of %s: %w", args[0], err)
			}
			if f.json {
				return printJSON(outOf(cmd), ms)
			}
			return metricsTable(ms).render(outOf(cmd))
		},
	}
}

func metricsTable(ms []sandbox.Metric) *table {
	t := &table{header: []string{"TIME", "CPUS", "CPU %", "MEMORY", "DISK"}}
	for _, m := range ms {
		disk := "-"
		if m.DiskTotal > 0 {
			disk = formatBytes(m.DiskUsed) + " / " + formatBytes(m.DiskTotal)
		}
		t.add(m.Timestamp.Local().Format(time.TimeOnly), strconv.Itoa(m.CpuCount),
			strconv.FormatFloat(m.CpuUsedPct, 'f', 1, 64),
			formatBytes(m.MemUsed)+" / "+formatBytes(m.MemTotal), disk)
	}
	return t
}
