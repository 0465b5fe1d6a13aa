// drive.mjs runs one official SDK or framework against the gateway and
// prints the answer's text: node drive.mjs <client> <generate|stream> <prompt>.
// realclients.sh copies it next to the pinned node_modules and sets
// OPENSOUL_GATEWAY_TOKEN, ANTHROPIC_ROOT (…/anthropic), OPENAI_API
// (…/openai/v1), MODEL_ANTHROPIC and MODEL_OPENAI.
const [client, mode, prompt] = process.argv.slice(2);
const env = process.env;
const token = env.OPENSOUL_GATEWAY_TOKEN;
const stream = mode === 'stream';

async function aiSdk(model) {
  const { generateText, streamText } = await import('ai');
  if (!stream) return (await generateText({ model, prompt, maxRetries: 0 })).text;
  const r = streamText({ model, prompt, maxRetries: 0, onError: ({ error }) => { throw error; } });
  let text = '';
  for await (const t of r.textStream) text += t;
  return text;
}

async function langchain(model) {
  if (!stream) return (await model.invoke(prompt)).content;
  let text = '';
  for await (const chunk of await model.stream(prompt)) text += typeof chunk.content === 'string' ? chunk.content : '';
  return text;
}

const drivers = {
  async 'ai-sdk-anthropic'() {
    const { createAnthropic } = await import('@ai-sdk/anthropic');
    return aiSdk(createAnthropic({ baseURL: env.ANTHROPIC_ROOT + '/v1', apiKey: token })(env.MODEL_ANTHROPIC));
  },
  async 'ai-sdk-openai'() {
    const { createOpenAI } = await import('@ai-sdk/openai');
    return aiSdk(createOpenAI({ baseURL: env.OPENAI_API, apiKey: token })(env.MODEL_OPENAI));
  },
  async 'anthropic-sdk'() {
    const { default: Anthropic } = await import('@anthropic-ai/sdk');
    const c = new Anthropic({ baseURL: env.ANTHROPIC_ROOT, authToken: token, apiKey: null, maxRetries: 0 });
    const req = { model: env.MODEL_ANTHROPIC, max_tokens: 64, messages: [{ role: 'user', content: prompt }] };
    if (!stream) return (await c.messages.create(req)).content.map((b) => b.text).join('');
    let text = '';
    for await (const ev of await c.messages.create({ ...req, stream: true })) {
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
    }
    return text;
  },
  async 'openai-sdk'() {
    const { default: OpenAI } = await import('openai');
    const c = new OpenAI({ baseURL: env.OPENAI_API, apiKey: token, maxRetries: 0 });
    if (!stream) return (await c.responses.create({ model: env.MODEL_OPENAI, input: prompt })).output_text;
    let text = '';
    for await (const ev of await c.chat.completions.create({ model: env.MODEL_OPENAI, stream: true, messages: [{ role: 'user', content: prompt }] })) {
      text += ev.choices[0]?.delta?.content ?? '';
    }
    return text;
  },
  async 'langchain-anthropic'() {
    const { ChatAnthropic } = await import('@langchain/anthropic');
    return langchain(new ChatAnthropic({ model: env.MODEL_ANTHROPIC, anthropicApiUrl: env.ANTHROPIC_ROOT, apiKey: token, maxRetries: 0 }));
  },
  async 'langchain-openai'() {
    const { ChatOpenAI } = await import('@langchain/openai');
    return langchain(new ChatOpenAI({ model: env.MODEL_OPENAI, apiKey: token, maxRetries: 0, configuration: { baseURL: env.OPENAI_API } }));
  },
};

if (!drivers[client]) {
  console.error(`unknown client ${client}; one of ${Object.keys(drivers).join(', ')}`);
  process.exit(2);
}
try {
  console.log(await drivers[client]());
} catch (e) {
  console.error(`${client}: ${e?.message ?? e}`);
  process.exit(1);
}
