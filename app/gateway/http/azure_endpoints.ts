import type { ApiCall } from '#gateway/http/generation_request'
import {
  audioSpeech,
  audioTranscriptions,
  audioTranslations,
  chatCompletions,
  completions,
  embeddings,
  imageEdits,
  imageGenerations,
  responses,
  responsesCompact,
} from '#gateway/http/api_endpoints'

import { modelInPath } from '#gateway/http/deployment_model'

type Endpoint = (call: ApiCall) => Promise<void>

/**
 * Azure OpenAI's inbound paths, for clients configured for Azure (the OpenAI
 * SDKs' `AzureOpenAI`, LangChain's `AzureChatOpenAI`, Semantic Kernel, .NET
 * apps) and pointed at the gateway, as LiteLLM serves them. Each is the /v1
 * endpoint of the same operation; `?api-version=` is accepted and ignored.
 *
 * - the v1 API, `/openai/v1/...`: OpenAI's paths, the model in the body;
 * - `/openai/responses`, where `AzureOpenAI`'s `responses.create` calls;
 * - classic `/openai/deployments/{deployment}/{operation}`: the deployment
 *   is the model (see deployment_model.ts).
 *
 * The API lane looks here only after its map of /v1 paths missed and the path
 * starts with `/openai/`, so /v1 stays one map lookup; the router's
 * `POST /openai/*` route resolves through the same function, so
 * `API_LANE=false` answers alike.
 */
const FIXED = new Map<string, Endpoint>([
  ['/openai/v1/chat/completions', chatCompletions],
  ['/openai/v1/completions', completions],
  ['/openai/v1/responses', responses],
  ['/openai/v1/responses/compact', responsesCompact],
  ['/openai/v1/embeddings', embeddings],
  ['/openai/v1/images/generations', imageGenerations],
  ['/openai/v1/images/edits', imageEdits],
  ['/openai/v1/audio/transcriptions', audioTranscriptions],
  ['/openai/v1/audio/translations', audioTranslations],
  ['/openai/v1/audio/speech', audioSpeech],
  ['/openai/responses', responses],
  ['/openai/responses/compact', responsesCompact],
])

const DEPLOYMENTS = '/openai/deployments/'

/**
 * The operations Azure serves under a deployment, by the path after it.
 * `/chat/completions` comes before `/completions`, which it also ends with.
 */
const DEPLOYMENT_OPERATIONS: Array<[string, Endpoint]> = [
  ['/chat/completions', chatCompletions],
  ['/completions', completions],
  ['/embeddings', embeddings],
  ['/images/generations', imageGenerations],
  ['/images/edits', imageEdits],
  ['/audio/transcriptions', audioTranscriptions],
  ['/audio/translations', audioTranslations],
  ['/audio/speech', audioSpeech],
]

export interface AzureTarget {
  endpoint: Endpoint
  /** The deployment segment as it came in the path (still percent-encoded), for a deployment path */
  deployment: string | undefined
}

/**
 * The endpoint of a POST path under `/openai/` (the path without its query),
 * or undefined for one Azure clients do not call. The deployment may hold
 * slashes (`openai/gpt-4o`), as LiteLLM's `{model:path}` takes it.
 */
export function azureEndpoint(path: string): AzureTarget | undefined {
  const fixed = FIXED.get(path)
  if (fixed !== undefined) return { endpoint: fixed, deployment: undefined }
  // Not an empty segment (`/openai/deployments//chat/completions` is no deployment called `/chat`).
  return modelInPath(path, DEPLOYMENTS, DEPLOYMENT_OPERATIONS)
}
