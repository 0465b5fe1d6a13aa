package cli

import (
	"context"
	"errors"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/cli/login"
	"github.com/opensoul/opensoul/gateway/keep"
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
			if len(args) != 1 || (args[0] != keep.SourceCodex && args[0] != keep.SourceClaude) {
				return usageErr("import takes one source: codex or claude")
			}
			if err := a.load(); err != nil {
				return err
			}
			ag, err := a.agentID(*agent)
			if err != nil {
				return err
			}
			err = a.loginHost().Import(ag, login.ImportRequest{Source: args[0], Path: *path, ID: *id, WriteBack: *writeBack})
			if ue := (*login.UsageError)(nil); errors.As(err, &ue) {
				return usageErr("%s", ue.Msg)
			}
			return err
		},
	})
}
