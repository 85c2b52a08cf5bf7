/**
 * The code samples of /docs, one per endpoint, in curl, Python and
 * JavaScript. Built from the base URL the visitor reached and the models
 * picked; `MODEL_MARK` stays in the template the page keeps so a click on a
 * model tag rewrites every snippet in the browser. tests/functional/
 * docs_snippets.spec.ts runs the curl and JavaScript ones against the
 * gateway.
 */
export const MODEL_MARK = '__MODEL__'

/** Where each snippet reads the key: never the key itself in the page. */
export const KEY_ENV = 'GATEWAY_API_KEY'

export type SnippetLanguage = 'curl' | 'python' | 'javascript'

export interface EndpointDoc {
  id: string
  method: 'GET' | 'POST'
  path: string
  /** Which model tag kind rewrites it ('chat' follows the tags; others are fixed) */
  modelKind: 'chat' | 'embedding' | 'image' | null
  snippets: Record<SnippetLanguage, string>
}

interface SnippetContext {
  base: string
  embeddingModel: string
  imageModel: string
  rerankModel: string
}

const pyClient = (base: string) => `from openai import OpenAI
import os

client = OpenAI(base_url="${base}/v1", api_key=os.environ["${KEY_ENV}"])`

const jsClient = (base: string) => `import OpenAI from 'openai'

const client = new OpenAI({ baseURL: '${base}/v1', apiKey: process.env.${KEY_ENV} })`

function getJson(base: string, path: string) {
  return {
    curl: `curl ${base}${path} \\
  -H "Authorization: Bearer $${KEY_ENV}"`,
    python: `import os, requests

answer = requests.get("${base}${path}", headers={"Authorization": f"Bearer {os.environ['${KEY_ENV}']}"})
print(answer.json())`,
    javascript: `const answer = await fetch('${base}${path}', {
  headers: { Authorization: \`Bearer \${process.env.${KEY_ENV}}\` },
})
console.log(JSON.stringify(await answer.json()))`,
  }
}

/** Every endpoint the gateway serves, in the order of the page. */
export function endpointDocs({ base, embeddingModel, imageModel, rerankModel }: SnippetContext): EndpointDoc[] {
  const M = MODEL_MARK
  return [
    {
      id: 'chat',
      method: 'POST',
      path: '/v1/chat/completions',
      modelKind: 'chat',
      snippets: {
        curl: `curl ${base}/v1/chat/completions \\
  -H "Authorization: Bearer $${KEY_ENV}" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "${M}",
    "messages": [
      {"role": "system", "content": "You are a helpful assistant."},
      {"role": "user", "content": "Hello!"}
    ]
  }'`,
        python: `${pyClient(base)}

completion = client.chat.completions.create(
    model="${M}",
    messages=[{"role": "user", "content": "Hello!"}],
)
print(completion.choices[0].message.content)`,
        javascript: `${jsClient(base)}

const completion = await client.chat.completions.create({
  model: '${M}',
  messages: [{ role: 'user', content: 'Hello!' }],
})
console.log(completion.choices[0].message.content)`,
      },
    },
    {
      id: 'stream',
      method: 'POST',
      path: '/v1/chat/completions',
      modelKind: 'chat',
      snippets: {
        curl: `curl -N ${base}/v1/chat/completions \\
  -H "Authorization: Bearer $${KEY_ENV}" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "${M}",
    "stream": true,
    "stream_options": {"include_usage": true},
    "messages": [{"role": "user", "content": "Stream a short greeting."}]
  }'`,
        python: `${pyClient(base)}

stream = client.chat.completions.create(
    model="${M}",
    messages=[{"role": "user", "content": "Stream a short greeting."}],
    stream=True,
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)`,
        javascript: `${jsClient(base)}

const stream = await client.chat.completions.create({
  model: '${M}',
  messages: [{ role: 'user', content: 'Stream a short greeting.' }],
  stream: true,
})
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? '')`,
      },
    },
    {
      id: 'responses',
      method: 'POST',
      path: '/v1/responses',
      modelKind: 'chat',
      snippets: {
        curl: `curl ${base}/v1/responses \\
  -H "Authorization: Bearer $${KEY_ENV}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${M}", "input": "Hello!"}'`,
        python: `${pyClient(base)}

response = client.responses.create(model="${M}", input="Hello!")
print(response.output_text)`,
        javascript: `${jsClient(base)}

const response = await client.responses.create({ model: '${M}', input: 'Hello!' })
console.log(response.output_text)`,
      },
    },
    {
      id: 'messages',
      method: 'POST',
      path: '/v1/messages',
      modelKind: 'chat',
      snippets: {
        curl: `curl ${base}/v1/messages \\
  -H "x-api-key: $${KEY_ENV}" \\
  -H "anthropic-version: 2023-06-01" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "${M}",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Hello!"}]
  }'`,
        python: `import os
from anthropic import Anthropic

client = Anthropic(base_url="${base}", api_key=os.environ["${KEY_ENV}"])
message = client.messages.create(
    model="${M}",
    max_tokens=256,
    messages=[{"role": "user", "content": "Hello!"}],
)
print(message.content[0].text)`,
        javascript: `import Anthropic from '@anthropic-ai/sdk'

const client = new Anthropic({ baseURL: '${base}', apiKey: process.env.${KEY_ENV} })
const message = await client.messages.create({
  model: '${M}',
  max_tokens: 256,
  messages: [{ role: 'user', content: 'Hello!' }],
})
console.log(message.content[0].text)`,
      },
    },
    {
      id: 'gemini',
      method: 'POST',
      path: '/v1beta/models/{model}:generateContent',
      modelKind: 'chat',
      snippets: {
        curl: `curl "${base}/v1beta/models/${M}:generateContent" \\
  -H "x-goog-api-key: $${KEY_ENV}" \\
  -H "Content-Type: application/json" \\
  -d '{"contents": [{"parts": [{"text": "Hello!"}]}]}'`,
        python: `import os
from google import genai

client = genai.Client(api_key=os.environ["${KEY_ENV}"], http_options={"base_url": "${base}"})
response = client.models.generate_content(model="${M}", contents="Hello!")
print(response.text)`,
        javascript: `import { GoogleGenAI } from '@google/genai'

const ai = new GoogleGenAI({ apiKey: process.env.${KEY_ENV}, httpOptions: { baseUrl: '${base}' } })
const response = await ai.models.generateContent({ model: '${M}', contents: 'Hello!' })
console.log(response.text)`,
      },
    },
    {
      id: 'embeddings',
      method: 'POST',
      path: '/v1/embeddings',
      modelKind: 'embedding',
      snippets: {
        curl: `curl ${base}/v1/embeddings \\
  -H "Authorization: Bearer $${KEY_ENV}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${embeddingModel}", "input": "The quick brown fox"}'`,
        python: `${pyClient(base)}

embedding = client.embeddings.create(model="${embeddingModel}", input="The quick brown fox")
print(len(embedding.data[0].embedding))`,
        javascript: `${jsClient(base)}

const embedding = await client.embeddings.create({ model: '${embeddingModel}', input: 'The quick brown fox' })
console.log(embedding.data[0].embedding.length)`,
      },
    },
    {
      id: 'images',
      method: 'POST',
      path: '/v1/images/generations',
      modelKind: 'image',
      snippets: {
        curl: `curl ${base}/v1/images/generations \\
  -H "Authorization: Bearer $${KEY_ENV}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${imageModel}", "prompt": "a cat reading a book, watercolor", "size": "1024x1024"}'`,
        python: `${pyClient(base)}

image = client.images.generate(model="${imageModel}", prompt="a cat reading a book, watercolor", size="1024x1024")
print(image.data[0].url or len(image.data[0].b64_json))`,
        javascript: `${jsClient(base)}

const image = await client.images.generate({
  model: '${imageModel}',
  prompt: 'a cat reading a book, watercolor',
  size: '1024x1024',
})
console.log(image.data[0].url ?? image.data[0].b64_json.length)`,
      },
    },
    {
      id: 'image_edits',
      method: 'POST',
      path: '/v1/images/edits',
      modelKind: 'image',
      snippets: {
        curl: `curl ${base}/v1/images/edits \\
  -H "Authorization: Bearer $${KEY_ENV}" \\
  -F model=${imageModel} \\
  -F image=@cat.png \\
  -F prompt="give the cat a red hat"`,
        python: `${pyClient(base)}

with open("cat.png", "rb") as image:
    edited = client.images.edit(model="${imageModel}", image=image, prompt="give the cat a red hat")
print(edited.data[0].url or len(edited.data[0].b64_json))`,
        javascript: `import fs from 'node:fs'
${jsClient(base)}

const edited = await client.images.edit({
  model: '${imageModel}',
  image: fs.createReadStream('cat.png'),
  prompt: 'give the cat a red hat',
})
console.log(edited.data[0].url ?? edited.data[0].b64_json.length)`,
      },
    },
    {
      id: 'transcriptions',
      method: 'POST',
      path: '/v1/audio/transcriptions',
      modelKind: null,
      snippets: {
        curl: `curl ${base}/v1/audio/transcriptions \\
  -H "Authorization: Bearer $${KEY_ENV}" \\
  -F model=whisper-1 \\
  -F file=@speech.wav`,
        python: `${pyClient(base)}

with open("speech.wav", "rb") as audio:
    transcript = client.audio.transcriptions.create(model="whisper-1", file=audio)
print(transcript.text)`,
        javascript: `import fs from 'node:fs'
${jsClient(base)}

const transcript = await client.audio.transcriptions.create({ model: 'whisper-1', file: fs.createReadStream('speech.wav') })
console.log(transcript.text)`,
      },
    },
    {
      id: 'speech',
      method: 'POST',
      path: '/v1/audio/speech',
      modelKind: null,
      snippets: {
        curl: `curl ${base}/v1/audio/speech \\
  -H "Authorization: Bearer $${KEY_ENV}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "tts-1", "voice": "alloy", "input": "Hello from the gateway"}' \\
  --output hello.mp3`,
        python: `${pyClient(base)}

speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the gateway")
speech.write_to_file("hello.mp3")`,
        javascript: `import fs from 'node:fs'
${jsClient(base)}

const speech = await client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'Hello from the gateway' })
fs.writeFileSync('hello.mp3', Buffer.from(await speech.arrayBuffer()))
console.log(fs.statSync('hello.mp3').size)`,
      },
    },
    {
      id: 'completions',
      method: 'POST',
      path: '/v1/completions',
      modelKind: 'chat',
      snippets: {
        curl: `curl ${base}/v1/completions \\
  -H "Authorization: Bearer $${KEY_ENV}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${M}", "prompt": "def fib(n):\\n    ", "suffix": "\\n    return a", "max_tokens": 64}'`,
        python: `${pyClient(base)}

completion = client.completions.create(
    model="${M}",
    prompt="def fib(n):\\n    ",
    suffix="\\n    return a",
    max_tokens=64,
)
print(completion.choices[0].text)`,
        javascript: `${jsClient(base)}

const completion = await client.completions.create({
  model: '${M}',
  prompt: 'def fib(n):\\n    ',
  suffix: '\\n    return a',
  max_tokens: 64,
})
console.log(completion.choices[0].text)`,
      },
    },
    {
      id: 'rerank',
      method: 'POST',
      path: '/v1/rerank',
      modelKind: null,
      snippets: {
        curl: `curl ${base}/v1/rerank \\
  -H "Authorization: Bearer $${KEY_ENV}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${rerankModel}", "query": "capital of France", "documents": ["Paris is in France.", "Berlin is in Germany."], "top_n": 1}'`,
        python: `import os, requests

answer = requests.post(
    "${base}/v1/rerank",
    headers={"Authorization": f"Bearer {os.environ['${KEY_ENV}']}"},
    json={"model": "${rerankModel}", "query": "capital of France", "documents": ["Paris is in France.", "Berlin is in Germany."], "top_n": 1},
)
print(answer.json()["results"])`,
        javascript: `const answer = await fetch('${base}/v1/rerank', {
  method: 'POST',
  headers: { Authorization: \`Bearer \${process.env.${KEY_ENV}}\`, 'Content-Type': 'application/json' },
  body: JSON.stringify({ model: '${rerankModel}', query: 'capital of France', documents: ['Paris is in France.', 'Berlin is in Germany.'], top_n: 1 }),
})
console.log((await answer.json()).results)`,
      },
    },
    {
      id: 'moderations',
      method: 'POST',
      path: '/v1/moderations',
      modelKind: null,
      snippets: {
        curl: `curl ${base}/v1/moderations \\
  -H "Authorization: Bearer $${KEY_ENV}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "omni-moderation-latest", "input": "I want to hug my cat"}'`,
        python: `${pyClient(base)}

result = client.moderations.create(model="omni-moderation-latest", input="I want to hug my cat")
print(result.results[0].flagged)`,
        javascript: `${jsClient(base)}

const result = await client.moderations.create({ model: 'omni-moderation-latest', input: 'I want to hug my cat' })
console.log(result.results[0].flagged)`,
      },
    },
    { id: 'models', method: 'GET', path: '/v1/models', modelKind: null, snippets: getJson(base, '/v1/models') },
    { id: 'usage', method: 'GET', path: '/v1/usage', modelKind: null, snippets: getJson(base, '/v1/usage') },
    { id: 'balance', method: 'GET', path: '/v1/balance', modelKind: null, snippets: getJson(base, '/v1/balance') },
  ]
}

/** Setup guides for coding agents and editors: what to set, with this gateway's base URL. */
export function toolGuides(base: string, model: string) {
  return [
    {
      id: 'claude_code',
      name: 'Claude Code',
      code: `export ANTHROPIC_BASE_URL=${base}
export ANTHROPIC_AUTH_TOKEN=$${KEY_ENV}
claude`,
    },
    {
      id: 'codex',
      name: 'Codex CLI',
      code: `# ~/.codex/config.toml
model = "${model}"
model_provider = "gateway"

[model_providers.gateway]
name = "Gateway"
base_url = "${base}/v1"
env_key = "${KEY_ENV}"
wire_api = "responses"`,
    },
    {
      id: 'gemini_cli',
      name: 'Gemini CLI',
      code: `# ~/.gemini/settings.json: { "security": { "auth": { "selectedType": "gemini-api-key" } } }
export GOOGLE_GEMINI_BASE_URL=${base}
export GEMINI_API_KEY=$${KEY_ENV}
gemini -m ${model}`,
    },
    {
      id: 'cursor',
      name: 'Cursor',
      code: `Settings → Models → API Keys → OpenAI API Key: <your key>
Override OpenAI Base URL: ${base}/v1
Add model: ${model}`,
    },
    {
      id: 'opencode',
      name: 'OpenCode',
      code: `// opencode.json
{
  "provider": {
    "gateway": {
      "npm": "@ai-sdk/openai-compatible",
      "options": { "baseURL": "${base}/v1", "apiKey": "{env:${KEY_ENV}}" },
      "models": { "${model}": {} }
    }
  }
}`,
    },
  ]
}
