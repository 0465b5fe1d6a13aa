package oauth

// Presets are the OAuth clients OpenSoul knows for providers whose terms
// allow external tools to use their sign-in, keyed by provider name.
// providers.<p>.oauth in config overrides any field (Merge), and supplies a
// client for any other provider.
//
// Anthropic is deliberately absent: Claude subscriptions are used through
// `claude setup-token` (opensoul models auth setup-token), as the seed says.
var Presets = map[string]Client{
	// OpenAI Codex sign-in (ChatGPT plans). These are the public values of
	// the Codex CLI's own login (openai/codex, codex-rs/login): the public
	// client id, auth.openai.com's authorize and token endpoints, the
	// loopback redirect http://localhost:1455/auth/callback the client is
	// registered with, and the scopes "openid profile email
	// offline_access". The extra authorize parameters are the ones the
	// Codex CLI sends. The ChatGPT account id is the
	// "https://api.openai.com/auth".chatgpt_account_id claim of the
	// id_token; requests made with such a login go to the ChatGPT backend
	// (https://chatgpt.com/backend-api/codex, which serves the Responses
	// API) with the chatgpt-account-id header. OpenAI's Codex docs state
	// that ChatGPT sign-in may be used by other tools. Checked against the
	// Codex CLI's auth.json schema and several independent clients
	// (December 2026); if OpenAI changes them, override in config.
	"openai": {
		AuthURL:        "https://auth.openai.com/oauth/authorize",
		TokenURL:       "https://auth.openai.com/oauth/token",
		ClientID:       "app_EMoamEEZ73f0CkXaXp7hrann",
		Scopes:         []string{"openid", "profile", "email", "offline_access"},
		RedirectPort:   1455,
		RedirectPath:   "/auth/callback",
		Params:         map[string]string{"id_token_add_organizations": "true", "codex_cli_simplified_flow": "true"},
		AccountIDClaim: []string{"https://api.openai.com/auth", "chatgpt_account_id"},
		EmailClaim:     []string{"email"},
		BaseURL:        "https://chatgpt.com/backend-api/codex",
		StripPrefix:    "/v1",
		Headers:        map[string]string{"chatgpt-account-id": "{accountId}"},
		Source:         "OpenAI Codex CLI sign-in (openai/codex codex-rs/login; public client)",
	},
}
