package main

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
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
			var ts []templateInfo
			if err := f.apiCall(cmd.Context(), "GET", "/templates", nil, &ts); err != nil {
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

func templateTable(ts []templateInfo, now time.Time) *table {
	t := &table{header: []string{"TEMPLATE ID", "NAMES", "STATUS", "CPU", "MEMORY", "DISK", "SPAWNS", "AGE"}}
	for _, tp := range ts {
		names := strings.Join(tp.Aliases, ",")
		if names == "" {
			names = "-"
		}
		t.add(tp.TemplateID, names, tp.BuildStatus, strconv.Itoa(tp.CPUCount),
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
				if err := f.apiCall(cmd.Context(), "DELETE", "/templates/"+url.PathEscape(ref), nil, nil); err != nil {
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
