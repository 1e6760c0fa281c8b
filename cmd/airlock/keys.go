package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/internal/apikey"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/tenancy"
)

func newKeysCmd() *cobra.Command {
	var dataDir, storeSpec string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage API keys (works while the server runs)",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", envOr("AIRLOCK_DATA_DIR", "/var/lib/airlock"), "data directory (env AIRLOCK_DATA_DIR)")
	cmd.PersistentFlags().StringVar(&storeSpec, "store", envOr("AIRLOCK_STORE", ""), storeFlagHelp)

	var (
		name, team string
		admin      bool
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API key and print it (only the key, on stdout)",
		Long: `Create an API key and print it (only the key, on stdout).

A key belongs to one team and sees only that team's sandboxes and templates.
The team is created if it does not exist. --admin keys may also use the
operator-only /admin routes.`,
		Example: "  export E2B_API_KEY=$(airlock keys create --name ci)\n  airlock keys create --team acme --name agent",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(cmd.Context(), storeSpec, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			t, err := tenancy.EnsureTeam(cmd.Context(), st, team)
			if errors.Is(err, tenancy.ErrInvalidTeam) {
				return usageErr(err)
			}
			if err != nil {
				return err
			}
			key, _, err := apikey.Create(cmd.Context(), st, apikey.Options{Name: name, TeamID: t.ID, Admin: admin})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "a label for the key")
	create.Flags().StringVar(&team, "team", store.DefaultTeamID, "the team the key belongs to (created if missing)")
	create.Flags().BoolVar(&admin, "admin", false, "allow the operator-only /admin routes")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys (masked)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(cmd.Context(), storeSpec, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := st.ListAPIKeys(cmd.Context())
			if err != nil {
				return err
			}
			teams, err := st.ListTeams(cmd.Context())
			if err != nil {
				return err
			}
			names := map[string]string{}
			for _, t := range teams {
				names[t.ID] = t.Name
			}
			teamName := func(id string) string {
				if n, ok := names[id]; ok {
					return n
				}
				return id
			}
			if asJSON {
				type row struct {
					ID, Name, Team, Mask, CreatedAt string
					Admin, Revoked                  bool
				}
				out := []row{}
				for _, k := range keys {
					out = append(out, row{k.ID, k.Name, teamName(k.TeamID), k.Mask, k.CreatedAt.Format("2006-01-02T15:04:05Z07:00"), k.Admin, k.Revoked})
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tTEAM\tKEY\tCREATED\tSTATUS")
			for _, k := range keys {
				status := "active"
				if k.Revoked {
					status = "revoked"
				} else if k.Admin {
					status = "active, admin"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, teamName(k.TeamID), k.Mask, k.CreatedAt.Format("2006-01-02 15:04"), status)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key by its ID (see keys list)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(cmd.Context(), storeSpec, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.RevokeAPIKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "revoked", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
