import type { ApiCall } from '#gateway/http/generation_request'
import { chatCompletions, completions, embeddings } from '#gateway/http/api_endpoints'
import { modelInPath } from '#gateway/http/deployment_model'

type Endpoint = (call: ApiCall) => Promise<void>

/**
 * OpenAI's legacy engine paths, `/v1/engines/{model}/completions`,
 * `/chat/completions` and `/embeddings` (the model in the path, as before
 * OpenAI put it in the body; old SDKs, LangChain's and LlamaIndex's older
 * OpenAI wrappers), and the same without /v1, as LiteLLM serves them. The
 * engine is the model, as a deployment is on Azure's paths: the body gets its
 * name (deployment_model.ts) and the call is the /v1 endpoint's.
 *
 * The API lane looks here only after its map of fixed paths missed, so /v1
 * stays one map lookup; the router's `POST /v1/engines/*` and `/engines/*`
 * resolve through the same function.
 */
const OPERATIONS: Array<[string, Endpoint]> = [
  ['/chat/completions', chatCompletions],
  ['/completions', completions],
  ['/embeddings', embeddings],
]

/** The endpoint and engine of a POST path (without its query), or undefined for one that is no engine path. */
export function engineEndpoint(path: string): { endpoint: Endpoint; deployment: string } | undefined {
  return modelInPath(path, '/v1/engines/', OPERATIONS) ?? modelInPath(path, '/engines/', OPERATIONS)
}
