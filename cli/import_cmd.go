package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

func (a *app) importCmd() *ffcli.Command {
	fs := a.flagSet("import")
	path := fs.String("path", "", "the CLI's credential file (default: $CODEX_HOME/auth.json or ~/.codex/auth.json; ~/.claude/.credentials.json)")
	id := fs.String("profile-id", "", "profile id (default openai:codex or anthropic:claude)")
	writeBack := fs.Bool("write-back", false, "let OpenSoul refresh the login and write the new tokens into the CLI's file")
	agent := fs.String("agent", "", "agent id (default: agents.default)")
	return leaf(&ffcli.Command{
		Name:       "import",
		ShortUsage: "opensoul models auth import codex|claude [--path FILE] [--profile-id ID] [--write-back] [--agent ID]",
		ShortHelp:  "Share the Codex CLI's or the Claude CLI's login as an externally managed profile.",
		LongHelp: `Two programs refreshing one login log each other out: each refresh spends
the refresh token, and the other's copy is then refused
(refresh_token_reused). An imported profile avoids that. OpenSoul keeps a
copy of the CLI's tokens, re-reads the CLI's file whenever it changes, and
never spends a refresh token older than the file's.

By default only the CLI refreshes the login (keep using it now and then,
or its login expires in OpenSoul too). With --write-back OpenSoul refreshes
it itself when it is due and writes the new tokens into the CLI's file,
so the CLI carries on with them.

Sources:
  codex   $CODEX_HOME/auth.json, else ~/.codex/auth.json (ChatGPT sign-in;
          requests go to the ChatGPT backend like a models auth login)
  claude  $CLAUDE_CONFIG_DIR/.credentials.json, else ~/.claude/.credentials.json
          (Linux; on macOS the Claude CLI keeps it in the Keychain: use
          claude setup-token instead)

Examples:
  opensoul models auth import codex
  opensoul models auth import codex --write-back
  opensoul models auth import claude --path /mnt/other/.credentials.json`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 || (args[0] != gateway.SourceCodex && args[0] != gateway.SourceClaude) {
				return usageErr("import takes one source: codex or claude")
			}
			source := args[0]
			if err := a.load(); err != nil {
				return err
			}
			ag, err := a.agentID(*agent)
			if err != nil {
				return err
			}
			file := *path
			if file == "" {
				file = a.externalPath(source)
			}
			file, err = filepath.Abs(file)
			if err != nil {
				return err
			}
			c, err := gateway.ReadExternal(source, file)
			if err != nil {
				return fmt.Errorf("import %s: %w", source, err)
			}
			provider := gateway.ExternalProvider(source)
			pid := *id
			if pid == "" {
				pid = provider + ":" + source
			}
			if len(pid) <= len(provider)+1 || pid[:len(provider)+1] != provider+":" {
				return usageErr("--profile-id %q must look like %s:<name>", pid, provider)
			}
			c.External = &store.External{Source: source, Path: file, WriteBack: *writeBack}
			if err := a.st.UpdateProfiles(ag, func(p *store.Profiles) error {
				p.Profiles[pid] = c
				return nil
			}); err != nil {
				return err
			}
			a.resetUsage(ag, pid)
			if err := upsertProfileMeta(a.cfgFile, pid, provider, store.TypeOAuth); err != nil {
				a.warnf("imported the login, but could not record it in %s: %v", a.cfgFile, err)
			}
			who := c.Email
			if who == "" {
				who = "the CLI's account"
			}
			mode := "the CLI refreshes it; OpenSoul follows the file"
			if *writeBack {
				mode = "OpenSoul may refresh it and writes new tokens back to the file"
			}
			expiry := ""
			if c.Expires != 0 {
				expiry = ", access token expires " + time.UnixMilli(c.Expires).Local().Format(time.RFC3339)
			}
			fmt.Fprintf(a.stdout, "Imported %s (%s, %s%s) from %s as %s: %s.\n", source, provider, who, expiry, file, pid, mode)
			fmt.Fprintln(a.stdout, "Check it with: opensoul models status")
			return nil
		},
	})
}

// externalPath is where a provider CLI keeps its login by default.
func (a *app) externalPath(source string) string {
	home := a.environ["HOME"]
	if source == gateway.SourceClaude {
		if d := a.environ["CLAUDE_CONFIG_DIR"]; d != "" {
			return filepath.Join(d, ".credentials.json")
		}
		return filepath.Join(home, ".claude", ".credentials.json")
	}
	if d := a.environ["CODEX_HOME"]; d != "" {
		return filepath.Join(d, "auth.json")
	}
	return filepath.Join(home, ".codex", "auth.json")
}
