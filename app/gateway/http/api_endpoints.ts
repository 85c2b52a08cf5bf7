import { accounted, type ApiCall, generate, withAccount } from '#gateway/http/generation_request'
import { readAudioUpload } from '#gateway/http/audio_upload'
import { readImageUpload } from '#gateway/http/image_upload'
import { chatCompletionEnvelope } from '#validators/chat_completion'
import {
  completionsEnvelope,
  countTokensEnvelope,
  embeddingsEnvelope,
  imagesEnvelope,
  messagesEnvelope,
  moderationsEnvelope,
  rerankEnvelope,
  responsesCompactEnvelope,
  responsesEnvelope,
  speechEnvelope,
} from '#validators/generation'
import { DEFAULT_MODERATION_MODEL } from '#gateway/moderations'

/**
 * The POST endpoints of /v1 whose path is fixed, each as one function of an
 * authenticated call. The controllers (Adonis router) and the API lane
 * (`api_lane.ts`, in front of the router) both run these.
 */
export function chatCompletions(call: ApiCall) {
  return generate(call, 'chat.completions', 'openai_chat', chatCompletionEnvelope)
}

export function messages(call: ApiCall) {
  return generate(call, 'messages', 'anthropic_messages', messagesEnvelope)
}

export function countMessageTokens(call: ApiCall) {
  return withAccount(call, 'messages.count_tokens', countTokensEnvelope, (gw, account, { rawBody, body }) =>
    gw.service.countTokens(
      { principal: call.principal, ingress: 'anthropic_messages', rawBody, body, model: body.model, req: call.req, res: call.res },
      account
    )
  )
}

export function responses(call: ApiCall) {
  return generate(call, 'responses', 'openai_responses', responsesEnvelope)
}

/** Codex's remote compaction: the same admission as /v1/responses (the endpoint's account), one non-stream call. */
export function responsesCompact(call: ApiCall) {
  return withAccount(call, 'responses.compact', responsesCompactEnvelope, (gw, account, { rawBody, body }) =>
    gw.service.compactResponses({ principal: call.principal, rawBody, body, model: body.model, req: call.req, res: call.res }, account)
  )
}

export function embeddings(call: ApiCall) {
  return withAccount(call, 'embeddings', embeddingsEnvelope, (gw, account, { rawBody, body }) =>
    gw.service.embeddings(
      { principal: call.principal, ingress: 'openai', rawBody, body, model: body.model, req: call.req, res: call.res },
      account
    )
  )
}

export function imageGenerations(call: ApiCall) {
  return withAccount(call, 'images.generations', imagesEnvelope, (gw, account, { rawBody, body }) =>
    gw.service.images(
      { principal: call.principal, rawBody, body, model: body.model, req: call.req, res: call.res },
      account
    )
  )
}

/** Image edits: a multipart upload (image or image[], mask, prompt, model...), billed per image like generations. */
export function imageEdits(call: ApiCall) {
  return accounted(call, 'images.edits', async (gw, account) =>
    gw.service.imageUpload('image_edits', await readImageUpload(gw.service, call, 'images.edits', account, gw.catalog), account)
  )
}

/** Image variations (dall-e-2): a multipart upload of one image, billed per image. */
export function imageVariations(call: ApiCall) {
  return accounted(call, 'images.variations', async (gw, account) =>
    gw.service.imageUpload('image_variations', await readImageUpload(gw.service, call, 'images.variations', account, gw.catalog), account)
  )
}

export function completions(call: ApiCall) {
  return withAccount(call, 'completions', completionsEnvelope, (gw, account, parsed) => {
    // The call becomes the body's only holder (a stream lasts minutes): see handOver in generation_request.ts.
    const { rawBody, body } = parsed
    parsed.rawBody = EMPTY_BODY
    parsed.body = {}
    return gw.service.completions(
      { principal: call.principal, rawBody, body, model: body.model, stream: body.stream === true, req: call.req, res: call.res },
      account
    )
  })
}

const EMPTY_BODY = Buffer.alloc(0)
/** Jina / Cohere rerank (also served at /v2/rerank, Cohere's v2 SDK, and /rerank). */
export function rerank(call: ApiCall) {
  return withAccount(call, 'rerank', rerankEnvelope, (gw, account, { rawBody, body }) =>
    gw.service.rerank({ principal: call.principal, rawBody, body, model: body.model, req: call.req, res: call.res }, account)
  )
}

/** OpenAI moderations; a body without `model` is for omni-moderation-latest (as at OpenAI). */
export function moderations(call: ApiCall) {
  return withAccount(
    call,
    'moderations',
    moderationsEnvelope,
    (gw, account, { rawBody, body }) =>
      gw.service.moderations(
        { principal: call.principal, rawBody, body, model: typeof body.model === 'string' ? body.model : DEFAULT_MODERATION_MODEL, req: call.req, res: call.res },
        account
      ),
    undefined,
    DEFAULT_MODERATION_MODEL
  )
}

export function audioTranscriptions(call: ApiCall) {
  return accounted(call, 'audio.transcriptions', async (gw, account) =>
    gw.service.transcribe('audio_transcriptions', await readAudioUpload(gw.service, call, 'audio.transcriptions', account), account)
  )
}

export function audioTranslations(call: ApiCall) {
  return accounted(call, 'audio.translations', async (gw, account) =>
    gw.service.transcribe('audio_translations', await readAudioUpload(gw.service, call, 'audio.translations', account), account)
  )
}

export function audioSpeech(call: ApiCall) {
  return withAccount(call, 'audio.speech', speechEnvelope, (gw, account, { rawBody, body }) =>
    gw.service.speech({ principal: call.principal, rawBody, body, model: body.model, req: call.req, res: call.res }, account)
  )
}

/** Path -> endpoint, for the lane's one map lookup per request. */
export const POST_ENDPOINTS = new Map<string, (call: ApiCall) => Promise<void>>([
  ['/v1/chat/completions', chatCompletions],
  ['/v1/messages', messages],
  ['/v1/messages/count_tokens', countMessageTokens],
  ['/v1/responses', responses],
  ['/v1/responses/compact', responsesCompact],
  ['/v1/embeddings', embeddings],
  ['/v1/images/generations', imageGenerations],
  ['/v1/images/edits', imageEdits],
  ['/v1/images/variations', imageVariations],
  ['/v1/completions', completions],
  ['/v1/audio/transcriptions', audioTranscriptions],
  ['/v1/audio/translations', audioTranslations],
  ['/v1/audio/speech', audioSpeech],
  ['/v1/rerank', rerank],
  ['/v2/rerank', rerank],
  ['/rerank', rerank],
  ['/v1/moderations', moderations],
  // LiteLLM's paths without /v1: clients set up for a LiteLLM proxy use its base URL
  // as its docs give it (`http://host:4000`, no /v1), and the OpenAI SDKs append the path to it.
  ['/chat/completions', chatCompletions],
  ['/completions', completions],
  ['/responses', responses],
  ['/responses/compact', responsesCompact],
  ['/embeddings', embeddings],
  ['/images/generations', imageGenerations],
  ['/images/edits', imageEdits],
  ['/images/variations', imageVariations],
  ['/audio/transcriptions', audioTranscriptions],
  ['/audio/translations', audioTranslations],
  ['/audio/speech', audioSpeech],
  ['/moderations', moderations],
  // Google's OpenAI compatibility base (`https://generativelanguage.googleapis.com/v1beta/openai/`), which
  // clients set up for Gemini through the OpenAI SDKs keep with only the host changed: the /v1 endpoints.
  ['/v1beta/openai/chat/completions', chatCompletions],
  ['/v1beta/openai/embeddings', embeddings],
  ['/v1beta/openai/images/generations', imageGenerations],
  // OpenRouter's base (`https://openrouter.ai/api/v1`), which its SDKs, the AI SDK's OpenRouter provider and the
  // OpenRouter providers of Cline, Roo Code and Kilo Code keep with only the host changed, and its Claude Code
  // guide (`ANTHROPIC_BASE_URL=https://openrouter.ai/api`: Claude Code appends /v1/messages): the /v1 endpoints.
  ['/api/v1/chat/completions', chatCompletions],
  ['/api/v1/completions', completions],
  ['/api/v1/responses', responses],
  ['/api/v1/embeddings', embeddings],
  ['/api/v1/messages', messages],
  ['/api/v1/messages/count_tokens', countMessageTokens],
])
