package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

func newTemplateCmd() *cobra.Command {
	f := &clientFlags{}
	cmd := groupCmd("template", "List and manage sandbox templates")
	cmd.Aliases = []string{"templates", "tpl"}
	cmd.Example = "  airlock template list\n  airlock template build my-py --from base --run 'pip install --break-system-packages requests'\n  airlock template rm my-template"
	f.register(cmd)
	cmd.AddCommand(newTemplateListCmd(f), newTemplateBuildCmd(f), newTemplateRmCmd(f))
	wrapExitCodes(cmd)
	return cmd
}

func newTemplateListCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List templates",
		Example: "  airlock template list\n  airlock template list --json | jq -r '.[].aliases[]'",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _ := f.client()
			ts, err := c.Templates(cmd.Context())
			if err != nil {
				return fmt.Errorf("list templates: %w", err)
			}
			sort.Slice(ts, func(i, j int) bool { return ts[i].CreatedAt.Before(ts[j].CreatedAt) })
			if f.json {
				return printJSON(outOf(cmd), ts)
			}
			return templateTable(ts, time.Now()).render(outOf(cmd))
		},
	}
}

func templateTable(ts []sandbox.Template, now time.Time) *table {
	t := &table{header: []string{"TEMPLATE ID", "NAMES", "STATUS", "CPU", "MEMORY", "DISK", "SPAWNS", "AGE"}}
	for _, tp := range ts {
		names := strings.Join(tp.Aliases, ",")
		if names == "" {
			names = "-"
		}
		t.add(tp.TemplateID, names, tp.BuildStatus, strconv.Itoa(tp.CpuCount),
			fmt.Sprintf("%d MiB", tp.MemoryMB), fmt.Sprintf("%d MiB", tp.DiskSizeMB),
			strconv.FormatInt(tp.SpawnCount, 10), formatAge(now.Sub(tp.CreatedAt)))
	}
	return t
}

func newTemplateRmCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME|ID...",
		Aliases: []string{"delete"},
		Short:   "Delete templates",
		Long:    "Delete templates by name or ID. A template in use by a running or paused sandbox is refused.",
		Example: "  airlock template rm my-template",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s needs at least one template name or ID", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, ref := range args {
				c, _ := f.client()
				if err := c.DeleteTemplate(cmd.Context(), ref); err != nil {
					return fmt.Errorf("delete template %s: %w", ref, err)
				}
				if !f.json {
					fmt.Fprintln(outOf(cmd), ref)
				}
			}
			if f.json {
				return printJSON(outOf(cmd), map[string][]string{"deleted": args})
			}
			return nil
		},
	}
}
