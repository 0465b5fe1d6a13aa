package connect

import (
	providers "github.com/opensoul/opensoul/gateway/provider"
)

// recipe is one client's setup as data. Every text field is a
// text/template rendered with a view (render.go).
type recipe struct {
	name, title string
	// checked names the client version the recipe was run with (the
	// captures in testdata/clients/ and testdata/clients/realclients.sh);
	// "" for a recipe not run with the real client here.
	checked string
	// oneOf: the client needs one provider only; the first part whose
	// API the configured routes speak most natively is used. Otherwise
	// each part is rendered for its own route.
	oneOf bool
	parts []partSpec
	notes []string
}

// partSpec is the recipe for one wire API family of a client.
type partSpec struct {
	title string
	apis  []string // the wire APIs this part can speak, preferred first
	env   string   // shell lines, one per line
	file  *fileSpec
	code  *codeSpec
	run   string
}

type codeSpec struct{ lang, text string }

// fileSpec is a block for a client's own config file.
type fileSpec struct {
	path   string // as shown: "~/.codex/config.toml"
	format string // "toml" (a top-level key block and one table) or "json" (one object at jsonPath)
	// jsonPath is where the object goes in a JSON file, dotted
	// ("models.providers.opensoul"); the printed text nests it.
	jsonPath string
	// locate lists, in order, variables the client reads its file's
	// location from: Var names a file when Name is "", else a directory
	// holding Name. None set: path under the home directory.
	locate []locator
	text   string
}

type locator struct{ Var, Name string }

// agentHeader picks the agent when the token opens every agent.
const agentHeader = "x-opensoul-agent"

// The wire APIs, by their provider-table names.
const (
	messages    = providers.APIAnthropicMessages
	responses   = providers.APIOpenAIResponses
	completions = providers.APIOpenAICompletions
)

// recipes, in the order `opensoul connect --help` lists them.
var recipes = []recipe{
	{
		name: "claude-code", title: "Claude Code", checked: "Claude Code 2.1.332",
		oneOf: true,
		parts: []partSpec{{
			title: "Claude Code",
			apis:  []string{messages},
			env: `export ANTHROPIC_BASE_URL={{.Root}}
export ANTHROPIC_AUTH_TOKEN="${{.TokenVar}}"
{{- if .Agent}}
export ANTHROPIC_CUSTOM_HEADERS='` + agentHeader + `: {{.Agent}}'
{{- end}}`,
			run: `claude -p ' /model status'    # answered by OpenSoul itself, no model call`,
		}},
		notes: []string{
			"ANTHROPIC_AUTH_TOKEN is sent as a Bearer token; never put the gateway token in ANTHROPIC_API_KEY (a gateway started from that shell would ignore it and warn).",
			"Chat commands: Claude Code answers a plain /model itself; type ` /model status` (leading space) or `//model status` to reach OpenSoul.",
			"Each Claude Code window is its own OpenSoul session (it sends x-claude-code-session-id).",
		},
	},
	{
		name: "codex", title: "Codex CLI", checked: "Codex 0.171.0",
		oneOf: true,
		parts: []partSpec{{
			title: "Codex",
			apis:  []string{responses},
			file: &fileSpec{
				path: "~/.codex/config.toml", format: "toml",
				locate: []locator{{"CODEX_HOME", "config.toml"}},
				text: `model_provider = "opensoul"

[model_providers.opensoul]
name = "OpenSoul"
base_url = "{{.API}}"
env_key = "{{.TokenVar}}"
wire_api = "responses"
{{- if .Agent}}
http_headers = { "` + agentHeader + `" = "{{.Agent}}" }
{{- end}}
`,
			},
			run: `codex exec{{with .Models}} -m {{index . 0}}{{end}} 'say hello'`,
		}},
		notes: []string{
			"Codex ignores OPENAI_BASE_URL for its built-in provider: it needs the provider block above, and reads the gateway token from the variable env_key names.",
			"The gateway answers Codex's WebSocket attempt on /responses with 426, so Codex uses HTTP at once.",
			"Each Codex run is its own OpenSoul session (it sends session-id).",
		},
	},
	{
		name: "openclaw", title: "OpenClaw", checked: "OpenClaw 2026.9.6",
		oneOf: true,
		parts: []partSpec{
			{
				title: "OpenClaw",
				apis:  []string{messages},
				file:  openclawFile(`{{.Root}}`),
			},
			{
				title: "OpenClaw",
				apis:  []string{completions},
				file:  openclawFile(`{{.API}}`),
			},
		},
		notes: []string{
			"OpenClaw ignores ANTHROPIC_BASE_URL: it needs a custom provider under models.providers. It reads ${VAR} in config strings, so the file holds the variable's name, not the token.",
			"Pick the model as opensoul/<model> (agents.defaults.model.primary, or --model with `openclaw agent exec`).",
			"OpenClaw sends Node's default user agent, so OpenSoul cannot tell it from other clients.",
		},
	},
	{
		name: "ai-sdk", title: "Vercel AI SDK", checked: "ai 6.0.326, @ai-sdk/anthropic 3.0.140, @ai-sdk/openai 3.0.141",
		parts: []partSpec{
			{
				title: "@ai-sdk/anthropic",
				apis:  []string{messages},
				code: &codeSpec{lang: "js", text: `import { createAnthropic } from '@ai-sdk/anthropic';
import { generateText } from 'ai';

const anthropic = createAnthropic({
  baseURL: '{{.API}}', // ends in /v1: the AI SDK appends only /messages
  apiKey: process.env.{{.TokenVar}},
{{- if .Agent}}
  headers: { '` + agentHeader + `': '{{.Agent}}' },
{{- end}}
});
const { text } = await generateText({ model: anthropic('{{.Model}}'), prompt: 'Hello' });
console.log(text);
`},
			},
			{
				title: "@ai-sdk/openai",
				apis:  []string{responses, completions},
				code: &codeSpec{lang: "js", text: `import { createOpenAI } from '@ai-sdk/openai';
import { generateText } from 'ai';

const openai = createOpenAI({
  baseURL: '{{.API}}',
  apiKey: process.env.{{.TokenVar}},
{{- if .Agent}}
  headers: { '` + agentHeader + `': '{{.Agent}}' },
{{- end}}
});
const { text } = await generateText({ model: openai('{{.Model}}'), prompt: 'Hello' });
console.log(text);
`},
			},
		},
		notes: []string{
			"Given a base URL without /v1, the AI SDK posts to …/messages; the gateway answers that with a 404 naming the right base URL.",
		},
	},
	{
		name: "openai-sdk", title: "OpenAI SDKs", checked: "openai 6.49.0 (JS), openai-go",
		oneOf: true,
		parts: []partSpec{{
			title: "openai (JS)",
			apis:  []string{responses, completions},
			code: &codeSpec{lang: "js", text: `import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: '{{.API}}',
  apiKey: process.env.{{.TokenVar}},
{{- if .Agent}}
  defaultHeaders: { '` + agentHeader + `': '{{.Agent}}' },
{{- end}}
});
const response = await client.responses.create({ model: '{{.Model}}', input: 'Hello' });
console.log(response.output_text);
`},
			run: `OPENAI_BASE_URL={{.API}} OPENAI_API_KEY="${{.TokenVar}}" your-openai-client    # for one command only`,
		}},
		notes: []string{
			"Every official OpenAI SDK reads OPENAI_BASE_URL and OPENAI_API_KEY; set them for the client's command only, never exported in the shell the gateway runs from.",
		},
	},
	{
		name: "anthropic-sdk", title: "Anthropic SDKs", checked: "@anthropic-ai/sdk 1.15.0, anthropic-sdk-go",
		oneOf: true,
		parts: []partSpec{{
			title: "@anthropic-ai/sdk",
			apis:  []string{messages},
			env: `export ANTHROPIC_BASE_URL={{.Root}}
export ANTHROPIC_AUTH_TOKEN="${{.TokenVar}}"`,
			code: &codeSpec{lang: "js", text: `import Anthropic from '@anthropic-ai/sdk';

const client = new Anthropic({
  baseURL: '{{.Root}}', // without /v1: the SDK appends /v1/messages
  authToken: process.env.{{.TokenVar}},
{{- if .Agent}}
  defaultHeaders: { '` + agentHeader + `': '{{.Agent}}' },
{{- end}}
});
const message = await client.messages.create({
  model: '{{.Model}}', max_tokens: 1024,
  messages: [{ role: 'user', content: 'Hello' }],
});
console.log(message.content);
`},
		}},
		notes: []string{
			"The Anthropic SDKs read ANTHROPIC_BASE_URL and ANTHROPIC_AUTH_TOKEN (sent as a Bearer token).",
		},
	},
	{
		name: "langchain", title: "LangChain JS", checked: "@langchain/anthropic 1.5.11",
		parts: []partSpec{
			{
				title: "@langchain/anthropic",
				apis:  []string{messages},
				code: &codeSpec{lang: "js", text: `import { ChatAnthropic } from '@langchain/anthropic';

const model = new ChatAnthropic({
  model: '{{.Model}}',
  anthropicApiUrl: '{{.Root}}', // without /v1
  apiKey: process.env.{{.TokenVar}},
{{- if .Agent}}
  clientOptions: { defaultHeaders: { '` + agentHeader + `': '{{.Agent}}' } },
{{- end}}
});
const reply = await model.invoke('Hello');
console.log(reply.content);
`},
			},
			{
				title: "@langchain/openai",
				apis:  []string{completions, responses},
				code: &codeSpec{lang: "js", text: `import { ChatOpenAI } from '@langchain/openai';

const model = new ChatOpenAI({
  model: '{{.Model}}',
  apiKey: process.env.{{.TokenVar}},
  configuration: {
    baseURL: '{{.API}}',
{{- if .Agent}}
    defaultHeaders: { '` + agentHeader + `': '{{.Agent}}' },
{{- end}}
  },
});
const reply = await model.invoke('Hello');
console.log(reply.content);
`},
			},
		},
		notes: []string{
			"LangChain sends the SDK's own user agent, so OpenSoul sees it as the Anthropic or OpenAI SDK.",
		},
	},
	{
		name: "curl", title: "curl", checked: "curl",
		parts: []partSpec{
			{
				title: "Messages API",
				apis:  []string{messages},
				run: `curl -sS {{.API}}/messages \
  -H "authorization: Bearer ${{.TokenVar}}" \
  -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \
{{- if .Agent}}
  -H '` + agentHeader + `: {{.Agent}}' \
{{- end}}
  -d '{"model":"{{.Model}}","max_tokens":256,"messages":[{"role":"user","content":"Hello"}]}'`,
			},
			{
				title: "Chat Completions API",
				apis:  []string{completions},
				run: `curl -sS {{.API}}/chat/completions \
  -H "authorization: Bearer ${{.TokenVar}}" -H 'content-type: application/json' \
{{- if .Agent}}
  -H '` + agentHeader + `: {{.Agent}}' \
{{- end}}
  -d '{"model":"{{.Model}}","messages":[{"role":"user","content":"Hello"}]}'`,
			},
		},
		notes: []string{
			"The gateway also takes the token as x-api-key or x-opensoul-token; x-opensoul-session names a session.",
		},
	},
}

// openclawFile is OpenClaw's custom provider entry with base URL base.
func openclawFile(base string) *fileSpec {
	return &fileSpec{
		path: "~/.openclaw/openclaw.json", format: "json", jsonPath: "models.providers.opensoul",
		locate: []locator{{"OPENCLAW_CONFIG_PATH", ""}, {"OPENCLAW_STATE_DIR", "openclaw.json"}},
		text: `{
  "baseUrl": "` + base + `",
  "apiKey": "${ {{- .TokenVar -}} }",
  "api": "{{.Wire}}",
{{- if .Agent}}
  "headers": { "` + agentHeader + `": "{{.Agent}}" },
{{- end}}
  "models": [
{{- range $i, $m := .Models}}{{if $i}},{{end}}
    { "id": "{{$m}}", "name": "{{$m}}" }
{{- end}}
  ]
}`,
	}
}
