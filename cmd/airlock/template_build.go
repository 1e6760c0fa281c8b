package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/internal/builder"
	"github.com/airlock-sandbox/airlock/internal/ociimage"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/template"
	"github.com/airlock-sandbox/airlock/internal/tenancy"
	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

const templateBuildLong = `Build a template from an existing ready one: run each --run command (with
/bin/sh -c, as root) in a sandbox started from it, on the template's runtime
(gVisor by default), with the sandbox's limits and a network that reaches
the internet but not the host, its LAN, private ranges or other sandboxes;
then record the source's tree plus the sandbox's changes under NAME. Rebuilding an existing
NAME keeps its ID and replaces its rootfs; sandboxes already running keep the
old one until they end.

This is a local command: run it as root on the server host, with the server's
--data-dir. The running server can use the template at once. Progress and the
commands' output go to stderr; the template ID (or --json) goes to stdout. A
failing command records nothing and exits 1 with its last output lines.

--from-oci PATH starts from a local image instead of a template: an OCI
layout directory or a ` + "`docker save`" + ` tarball. Its layers are flattened
(whiteouts applied) and the build sandbox adds E2B's user "user"; commands
in its sandboxes run as that user in /home/user with the image's ENV.

--cpu and --memory-mb default to the source template's; --start-cmd (run by
envd in every new sandbox) defaults to the source's, and --start-cmd ''
clears it.`

const templateBuildExample = `  # Python packages on top of base
  airlock template build my-py --from base --run 'pip install --break-system-packages requests'

  # Debian packages and a start command
  airlock template build web --from base \
    --run 'apt-get update && apt-get install -y --no-install-recommends nginx' \
    --start-cmd 'nginx' --cpu 1 --memory-mb 512

  # A template from an image saved with docker save
  airlock template build myimg --from-oci ./image.tar --run 'pip install requests'

  # The code interpreter with an extra library, then use it
  airlock template build ci-extra --from code-interpreter-v1 --run 'pip install --break-system-packages polars'
  airlock sandbox create --template ci-extra`

func newTemplateBuildCmd(f *clientFlags) *cobra.Command {
	var (
		from, startCmd string
		fromOCI        string
		runs           []string
		cpu, memoryMB  int
		dataDir, team  string
		storeSpec      string
		public         bool
		runtimeName    string
		usernsBase     int
	)
	cmd := &cobra.Command{
		Use:     "build NAME (--from TEMPLATE | --from-oci PATH) [--run CMD]...",
		Short:   "Build a template from another one plus shell commands run in a sandbox (on the server host)",
		Long:    templateBuildLong,
		Example: templateBuildExample,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (from == "") == (fromOCI == "") {
				return usagef("%s needs --from TEMPLATE (e.g. --from base) or --from-oci PATH", cmd.CommandPath())
			}
			if cpu < 0 || memoryMB < 0 {
				return usagef("--cpu and --memory-mb must be positive")
			}
			if os.Geteuid() != 0 {
				return errors.New("template build must run as root on the server host")
			}
			st, err := openStore(cmd.Context(), storeSpec, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			log := slog.New(slog.NewTextHandler(errOf(cmd), &slog.HandlerOptions{Level: slog.LevelWarn}))
			tcfg := template.Config{DataDir: dataDir}
			var fromTree *store.Template
			var lend []template.Lend
			if fromOCI != "" {
				var release func()
				if fromTree, lend, release, err = imageTree(cmd.Context(), dataDir, fromOCI, errOf(cmd)); err != nil {
					return err
				}
				defer release() // the cache keeps the image's tree until the build ends
				// The image's tree becomes a sandbox's in the build sandbox first.
				runs = append([]string{builder.ProvisionStep()}, runs...)
			}
			if len(runs) > 0 {
				runner, done, err := buildRunner(cmd.Context(), dataDir, usernsBase, cliBuildNet, log)
				if err != nil {
					return err
				}
				defer done()
				tcfg.Steps = runner
			}
			m := template.NewManager(tcfg, st, log)
			owner, err := tenancy.EnsureTeam(cmd.Context(), st, team)
			if errors.Is(err, tenancy.ErrInvalidTeam) {
				return usageErr(err)
			}
			if err != nil {
				return err
			}
			opts := template.DeriveOptions{Name: args[0], From: from, FromTree: fromTree, Lend: lend, Run: runs, CPUCount: cpu, MemoryMB: memoryMB, TeamID: owner.ID, Public: public, Runtime: runtimeName}
			if cmd.Flags().Changed("start-cmd") {
				opts.StartCmd = &startCmd
			}
			t, err := m.Derive(cmd.Context(), opts, errOf(cmd))
			switch {
			case errors.Is(err, template.ErrInvalidName):
				return usageErr(err)
			case errors.Is(err, template.ErrNotFound):
				return &cliError{code: exitNotFound, err: err}
			case err != nil:
				return err
			}
			if f.json {
				return printJSON(outOf(cmd), sandbox.Template{
					TemplateID: t.ID, BuildID: t.ID, CpuCount: t.CPUCount, MemoryMB: t.MemoryMB, DiskSizeMB: t.DiskSizeMB,
					Public: t.Public, Aliases: t.Aliases, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
					SpawnCount: t.SpawnCount, BuildStatus: t.BuildStatus, Runtime: t.Runtime,
				})
			}
			fmt.Fprintln(outOf(cmd), t.ID)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "template (name or ID) to start from")
	fl.StringVar(&fromOCI, "from-oci", "", "start from a local image instead: an OCI layout directory or a `docker save` tarball")
	fl.StringArrayVar(&runs, "run", nil, "shell command to run as root in the build sandbox; repeatable, run in order")
	fl.StringVar(&startCmd, "start-cmd", "", "command envd starts in every new sandbox (default: the source's)")
	fl.IntVar(&cpu, "cpu", 0, "default vCPUs of its sandboxes (default: the source's)")
	fl.IntVar(&memoryMB, "memory-mb", 0, "default memory of its sandboxes in MiB (default: the source's)")
	fl.StringVar(&team, "team", store.DefaultTeamID, "the team that owns the template (only its keys see it)")
	fl.BoolVar(&public, "public", false, "let every team create sandboxes from it")
	fl.StringVar(&runtimeName, "runtime", "", "runtime its sandboxes use unless a create names one: runsc (gVisor) or runc (default: the source's, else the server's)")
	fl.IntVar(&usernsBase, "runc-userns-base", envInt("AIRLOCK_RUNC_USERNS_BASE", defaultUsernsBase), "as for airlock serve: the host ids a runc build sandbox's ids map to; 0 for none (env AIRLOCK_RUNC_USERNS_BASE)")
	fl.StringVar(&storeSpec, "store", envOr("AIRLOCK_STORE", ""), storeFlagHelp)
	fl.StringVar(&dataDir, "data-dir", envOr("AIRLOCK_DATA_DIR", "/var/lib/airlock"), "the server's data directory (env AIRLOCK_DATA_DIR)")
	return cmd
}

// imageTree flattens a local image and describes its tree as a template to
// build on (builder.ImageBase), with the agent lent for provisioning.
func imageTree(ctx context.Context, dataDir, path string, progress io.Writer) (*store.Template, []template.Lend, func(), error) {
	self, err := selfBinary()
	if err != nil {
		return nil, nil, nil, err
	}
	helper, err := agentBinary(dataDir, self)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("install the sandbox agent: %w", err)
	}
	images := ociimage.New(ociimage.Config{Dir: filepath.Join(dataDir, "images")})
	im, err := images.Open(ctx, path, func(msg string) { fmt.Fprintln(progress, msg) })
	if errors.Is(err, ociimage.ErrNotFound) {
		return nil, nil, nil, &cliError{code: exitNotFound, err: err}
	}
	if err != nil {
		return nil, nil, nil, err
	}
	t := builder.ImageBase(path, im)
	return t, []template.Lend{{Source: helper, Dest: builder.HelperPath}}, im.Release, nil
}
