package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	providers "github.com/opensoul/opensoul/gateway/provider"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/opensoul/opensoul/gateway/oauth"
	"github.com/opensoul/opensoul/wasm"
)

// providersCmd is `opensoul providers`: the provider modules (wasm/ABI.md).
func (a *app) providersCmd() *ffcli.Command {
	return a.group(&ffcli.Command{
		Name:        "providers",
		ShortUsage:  "opensoul providers <list|check> [flags]",
		ShortHelp:   "List provider modules, or check a secret with one.",
		FlagSet:     a.flagSet("providers"),
		Subcommands: []*ffcli.Command{a.providersListCmd(), a.providersCheckCmd()},
	})
}

// providerRow is one line of `providers list`.
type providerRow struct {
	Name       string   `json:"name"`
	BaseURL    string   `json:"baseUrl"`
	Module     string   `json:"module"` // builtin, generic, or the module's path
	ABIVersion int      `json:"abiVersion"`
	Version    string   `json:"version"`
	Ops        []string `json:"ops"`
	// OpsDeclared: the module lists its ops in info; otherwise Ops is what
	// it answered to one probe each, and it is asked every op.
	OpsDeclared bool `json:"opsDeclared"`
	// OAuth is the OAuth client the module declares in its info answer
	// (wasm/ABI.md), as sent; `models auth login` uses it.
	OAuth   json.RawMessage `json:"oauth,omitempty"`
	Error   string          `json:"error,omitempty"`
	Backoff *wasm.Backoff   `json:"backoff,omitempty"` // the running gateway is skipping this module
}

func (a *app) providersListCmd() *ffcli.Command {
	fs := a.flagSet("list")
	asJSON := fs.Bool("json", false, "print JSON")
	return leaf(&ffcli.Command{
		Name:       "list",
		ShortUsage: "opensoul providers list [--json]",
		ShortHelp:  "List providers with their base URL, module, ABI version and ops.",
		LongHelp: `Loads every provider module (the built-ins and providers.<name>.module
from config) and shows what each answers. A provider without a module
is "generic": Authorization: Bearer and the built-in status table. A
module that fails to load is listed with its error; the others work.
A module that the running gateway is skipping, because its calls kept
hitting the deadline or trapping, is listed with when it will be tried
again; its provider gets the built-in behaviour until then.

Examples:
  opensoul providers list
  opensoul providers list --json`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("providers list takes no arguments")
			}
			reg, _, err := a.registry(ctx)
			if err != nil {
				return err
			}
			rows := a.providerRows(reg.Providers(ctx))
			if err := a.addBackoffs(rows); err != nil {
				a.warnf("%v", err)
			}
			if *asJSON {
				return writeJSON(a.stdout, rows)
			}
			return writeProviderTable(a.stdout, rows)
		},
	})
}

// writeProviderTable prints rows as a table, then each load error.
func writeProviderTable(w io.Writer, rows []providerRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tBASE URL\tMODULE\tABI\tVERSION\tOPS")
	for _, r := range rows {
		abi, version, ops := "-", orDash(r.Version), strings.Join(r.Ops, ",")
		if r.ABIVersion > 0 {
			abi = fmt.Sprint(r.ABIVersion)
		}
		switch {
		case r.Error != "":
			ops = "(failed to load)"
		case r.Module == "generic":
			ops = "(generic: Bearer header, status table)"
		case r.Backoff != nil && builtinProvider(r.Name):
			ops = "(skipped by the gateway: built-in behaviour)"
		case r.Backoff != nil:
			ops = "(skipped by the gateway: requests get 503)"
		case !r.OpsDeclared && r.ABIVersion > 0:
			ops += " (probed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, orDash(r.BaseURL), r.Module, abi, version, ops)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(w, "\n%s: %s\n", r.Name, r.Error)
		}
		if b := r.Backoff; b != nil {
			fmt.Fprintf(w, "\n%s: %s\n", r.Name, backoffText(*b))
		}
		if len(r.OAuth) > 0 {
			var c oauth.Client
			json.Unmarshal(r.OAuth, &c)
			from := ""
			if c.Source != "" {
				from = " (" + c.Source + ")"
			}
			fmt.Fprintf(w, "\n%s: the module declares an OAuth sign-in%s: opensoul models auth login --provider %s\n", r.Name, from, r.Name)
		}
	}
	return nil
}

// backoffText says what a skipped module means for its provider: a
// built-in provider is served the built-in way meanwhile, a custom one
// gets 503 (wasm/ABI.md "Limits").
func backoffText(b wasm.Backoff) string {
	meanwhile := "its provider gets the built-in headers and classification"
	if !builtinProvider(b.Provider) {
		meanwhile = "its provider has no built-in way to present credentials, so its requests get 503"
	}
	return fmt.Sprintf("module %s skipped by the running gateway since %s, after %d failures in a row (last: %s); "+
		"%s until %s, then one request tries the module again",
		b.Module, b.Since.UTC().Format(time.RFC3339), b.Failures, b.Error, meanwhile, b.Until.UTC().Format(time.RFC3339))
}

func builtinProvider(name string) bool {
	_, ok := providers.Lookup(name)
	return ok
}

// addBackoffs marks the rows whose module the running gateway is skipping
// (it lists them in the state dir).
func (a *app) addBackoffs(rows []providerRow) error {
	skipped, err := wasm.ReadBackoffs(a.backoffFile())
	for _, b := range skipped {
		for i := range rows {
			if rows[i].Name == b.Provider && rows[i].Module == b.Module {
				rows[i].Backoff = &b
			}
		}
	}
	return err
}

func (a *app) providerRows(infos []wasm.ProviderInfo) []providerRow {
	rows := make([]providerRow, 0, len(infos))
	for _, p := range infos {
		rows = append(rows, providerRow{
			Name: p.Name, BaseURL: a.cfg.Providers[p.Name].BaseURL, Module: p.Source,
			ABIVersion: p.ABIVersion, Version: p.Version, Ops: p.Ops, OpsDeclared: p.OpsDeclared,
			OAuth: p.OAuth, Error: p.Error, Backoff: p.Backoff,
		})
	}
	return rows
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// checkVerdict is the JSON of `providers check`. It never holds the secret.
type checkVerdict struct {
	Provider  string `json:"provider"`
	Valid     bool   `json:"valid"`
	Kind      string `json:"kind"`
	ExpiresAt *int64 `json:"expiresAt"`
	Reason    string `json:"reason,omitempty"`
	Hint      string `json:"hint,omitempty"`
}

func (a *app) providersCheckCmd() *ffcli.Command {
	fs := a.flagSet("check")
	provider := fs.String("provider", "", "provider whose module checks the secret (anthropic, openai, …)")
	typ := fs.String("type", "", "how the secret would be stored: api_key, token or oauth (default: let the module tell)")
	asJSON := fs.Bool("json", false, "print JSON")
	return leaf(&ffcli.Command{
		Name:       "check",
		ShortUsage: "opensoul providers check --provider P [--type api_key|token|oauth] [--json]  < secret",
		ShortHelp:  "Ask a provider's module whether a secret on stdin looks usable; exit 1 if not.",
		LongHelp: `Reads one secret from stdin (prompted without echo on a terminal), runs
the provider module's check on it offline, and prints the verdict: the
kind of credential it recognises, or why it is invalid. Nothing is stored
and no request is sent to the provider. Exits 1 when the secret is invalid.

Examples:
  pbpaste | opensoul providers check --provider anthropic
  opensoul providers check --provider openai --json < key.txt`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErr("providers check reads the secret from stdin, not from arguments (arguments end up in shell history)")
			}
			if err := validProvider(*provider); err != nil {
				return err
			}
			switch *typ {
			case "", "api_key", "token", "oauth":
			default:
				return usageErr("--type: want api_key, token or oauth, got %q", *typ)
			}
			reg, _, err := a.registry(ctx)
			if err != nil {
				return err
			}
			if err := a.knownProvider(*provider); err != nil {
				return err
			}
			raw, err := a.readSecret(fmt.Sprintf("Paste the %s secret to check (input hidden): ", *provider))
			if err != nil {
				return err
			}
			secret, err := normalizeSecret(raw)
			if err != nil {
				return err
			}
			res, err := reg.Check(ctx, *provider, wasm.CheckRequest{Type: *typ, Secret: secret, Now: time.Now().UnixMilli()})
			if err != nil {
				var me *wasm.ModuleError
				if errors.As(err, &me) {
					return fmt.Errorf("cannot check: %w", err)
				}
				return err
			}
			v := checkVerdict{Provider: *provider, Valid: res.Valid, Kind: res.Kind, ExpiresAt: res.ExpiresAt, Reason: res.Reason, Hint: res.Hint}
			if *asJSON {
				if err := writeJSON(a.stdout, v); err != nil {
					return err
				}
			} else {
				a.printVerdict(v)
			}
			if !v.Valid {
				return &exitError{code: 1}
			}
			return nil
		},
	})
}

func (a *app) printVerdict(v checkVerdict) {
	if v.Valid {
		fmt.Fprintf(a.stdout, "valid: %s %s", v.Provider, v.Kind)
		if v.ExpiresAt != nil {
			fmt.Fprintf(a.stdout, ", expires %s", time.UnixMilli(*v.ExpiresAt).UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(a.stdout)
		return
	}
	fmt.Fprintf(a.stdout, "invalid: %s\n", orDash(v.Reason))
	if v.Hint != "" {
		fmt.Fprintf(a.stdout, "hint: %s\n", v.Hint)
	}
}

// knownProvider refuses a provider that is neither built in nor configured,
// so a typo is not checked with the generic rules.
func (a *app) knownProvider(name string) error {
	known := wasm.BuiltinNames()
	for p := range a.cfg.Providers {
		if !slices.Contains(known, p) {
			known = append(known, p)
		}
	}
	if slices.Contains(known, name) {
		return nil
	}
	slices.Sort(known)
	msg := fmt.Sprintf("unknown provider %q (known: %s; add others under providers.<name> in config)", name, strings.Join(known, ", "))
	if s := suggest(name, known); s != "" {
		msg = fmt.Sprintf("unknown provider %q; did you mean %q? (known: %s)", name, s, strings.Join(known, ", "))
	}
	return usageErr("%s", msg)
}
