import { GatewayError } from '#exceptions/gateway_error'
import { assertStorableModel } from '#gateway/http/model_name'

/**
 * Azure OpenAI's classic paths name the model in the path
 * (`/openai/deployments/{deployment}/chat/completions`), as OpenAI's legacy
 * engine paths do (`/v1/engines/{model}/completions`), and such clients'
 * bodies usually name none. The deployment is the model, also over a `model`
 * the body names: Azure serves the deployment whatever the body says, and
 * LiteLLM, whose Azure paths these clients were set up for, takes the path's
 * name first too. So the body is made to carry it before anything reads it:
 * from there the call is an ordinary /v1 call (routing, the envelope's check,
 * the bytes an OpenAI-compatible upstream gets, the cache key, the usage row).
 */

/**
 * The operation and model segment of a path that names its model between a
 * prefix and the operation (`{prefix}{model}{operation}`), or undefined: the
 * model may hold slashes (`openai/gpt-4o`, as LiteLLM's `{model:path}`
 * takes it), not be empty or start or end with one. `operations` lists the
 * longer of two paths ending alike first (`/chat/completions` before
 * `/completions`). The segment is still percent-encoded (deploymentName).
 */
export function modelInPath<E>(path: string, prefix: string, operations: ReadonlyArray<readonly [string, E]>): { endpoint: E; deployment: string } | undefined {
  if (!path.startsWith(prefix)) return undefined
  for (const [operation, endpoint] of operations) {
    if (!path.endsWith(operation)) continue
    const deployment = path.slice(prefix.length, path.length - operation.length)
    if (deployment !== '' && deployment[0] !== '/' && deployment.at(-1) !== '/') return { endpoint, deployment }
  }
  return undefined
}

/** The deployment segment of the path as a model name: percent-decoded once; malformed or unstorable is a 400. */
export function deploymentName(segment: string): string {
  let name: string
  try {
    name = decodeURIComponent(segment)
  } catch {
    throw GatewayError.invalidRequest('Malformed percent-encoding in the path', 'invalid_url')
  }
  assertStorableModel(name)
  return name
}

/**
 * The body's bytes with `model` set to the deployment (and `body` changed to
 * match). A body without a model, the usual case, gets the member added to
 * its bytes rather than serialised again; one naming another model (rare) is
 * serialised again.
 */
export function withDeploymentModel(raw: Buffer, body: Record<string, any>, deployment: string): Buffer {
  if (body.model === deployment) return raw
  const insert = body.model === undefined && hasMembers(body)
  body.model = deployment
  if (!insert) return Buffer.from(JSON.stringify(body))
  // Only whitespace may come before the object's brace (parseJsonObject checked it is one object).
  const open = raw.indexOf(0x7b)
  return Buffer.concat([raw.subarray(0, open + 1), Buffer.from(`"model":${JSON.stringify(deployment)},`), raw.subarray(open + 1)])
}

function hasMembers(body: Record<string, any>): boolean {
  for (const _ in body) return true
  return false
}
