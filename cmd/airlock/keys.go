package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/internal/apikey"
	"github.com/airlock-sandbox/airlock/internal/store/sqlite"
)

func newKeysCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage API keys (works while the server runs)",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", envOr("AIRLOCK_DATA_DIR", "/var/lib/airlock"), "data directory (env AIRLOCK_DATA_DIR)")

	var name string
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create an API key and print it (only the key, on stdout)",
		Example: "  export E2B_API_KEY=$(airlock keys create --name ci)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := sqlite.Open(filepath.Join(dataDir, "airlock.db"))
			if err != nil {
				return err
			}
			defer st.Close()
			key, _, err := apikey.Create(cmd.Context(), st, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "a label for the key")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys (masked)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := sqlite.Open(filepath.Join(dataDir, "airlock.db"))
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := st.ListAPIKeys(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				type row struct {
					ID, Name, Mask, CreatedAt string
					Revoked                   bool
				}
				out := []row{}
				for _, k := range keys {
					out = append(out, row{k.ID, k.Name, k.Mask, k.CreatedAt.Format("2006-01-02T15:04:05Z07:00"), k.Revoked})
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tKEY\tCREATED\tSTATUS")
			for _, k := range keys {
				status := "active"
				if k.Revoked {
					status = "revoked"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Mask, k.CreatedAt.Format("2006-01-02 15:04"), status)
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
			st, err := sqlite.Open(filepath.Join(dataDir, "airlock.db"))
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
