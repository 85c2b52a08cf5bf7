import { providerFiles, holderKey } from '#gateway/provider_files/provider_file_store'
import type { BatchObjectRow } from '#gateway/batches/batch_store'

/**
 * What the gateway reads of Gemini's batch objects: the long-running
 * Operation `{name: "batches/x", metadata: {state, model, batchStats,
 * output}, done, response: {inlinedResponses | responsesFile}}` that
 * `batchGenerateContent`, `GET /v1beta/batches/{id}` and the list answer.
 */

/** States after which nothing more runs upstream: the batch is billed then (for what completed, however it ended). */
export const GEMINI_FINISHED_STATES: ReadonlySet<string> = new Set([
  'BATCH_STATE_SUCCEEDED',
  'BATCH_STATE_FAILED',
  'BATCH_STATE_CANCELLED',
  'BATCH_STATE_EXPIRED',
])

/** Google's batch names (`batches/{id}`): kept as sent, and put in paths (`/batches/{id}:cancel`), so nothing else */
const BATCH_NAME = /^batches\/[A-Za-z0-9_-]{1,200}$/

export function isGeminiBatchName(value: unknown): value is string {
  return typeof value === 'string' && BATCH_NAME.test(value)
}

function objectOrNull(value: unknown): Record<string, any> | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, any>) : null
}

/** The batch's state (`metadata.state`), NUL-free; null when the answer says none */
export function geminiBatchState(upstream: Record<string, any>): string | null {
  const state = objectOrNull(upstream.metadata)?.state
  return typeof state === 'string' && state !== '' ? state.replaceAll('\0', '') : null
}

/** The batch's output, where Google puts it: the Operation's `response`, or `metadata.output` */
function outputOf(upstream: Record<string, any>): Record<string, any> | null {
  return objectOrNull(upstream.response) ?? objectOrNull(objectOrNull(upstream.metadata)?.output)
}

/**
 * Where an output holds its inline answers: `inlinedResponses`, and for an
 * embedding batch also `inlinedEmbedContentResponses` (the name @google/genai
 * reads them under too), each `{inlinedResponses: [...]}`
 */
const INLINED_FIELDS = ['inlinedResponses', 'inlinedEmbedContentResponses']

/** The inline answers of a finished inline batch (`inlinedResponses.inlinedResponses`), or null when the answer has none */
export function inlinedResponsesOf(upstream: Record<string, any>): unknown[] | null {
  for (const output of [objectOrNull(upstream.response), objectOrNull(objectOrNull(upstream.metadata)?.output)]) {
    for (const field of INLINED_FIELDS) {
      const list = objectOrNull(output?.[field])?.inlinedResponses
      if (Array.isArray(list)) return list
    }
  }
  return null
}

/** The results file a finished file batch names (`responsesFile: "files/..."`), or null */
export function responsesFileOf(upstream: Record<string, any>): string | null {
  const name = outputOf(upstream)?.responsesFile
  return typeof name === 'string' && /^files\/[A-Za-z0-9_-]{1,128}$/.test(name) ? name : null
}

/**
 * The object as the row keeps it (the list answers from it): without the
 * inline answers, which may be tens of MB (a look at one batch asks the
 * upstream and answers them whole).
 */
export function withoutInlined(upstream: Record<string, any>): Record<string, any> {
  if (inlinedResponsesOf(upstream) === null) return upstream
  const kept: Record<string, any> = { ...upstream }
  const holds = (output: Record<string, any> | null) => INLINED_FIELDS.some((field) => output?.[field])
  const strip = (output: Record<string, any>) => {
    const stripped = { ...output }
    for (const field of INLINED_FIELDS) if (stripped[field]) stripped[field] = { inlinedResponses: [] }
    return stripped
  }
  if (holds(objectOrNull(kept.response))) kept.response = strip(kept.response)
  const metadata = objectOrNull(kept.metadata)
  if (metadata !== null && holds(objectOrNull(metadata.output))) kept.metadata = { ...metadata, output: strip(metadata.output) }
  return kept
}

/** How a finished batch ended, in the words of the usage row's error code (`batch_{end}`; `completed` is none) */
export function geminiBatchEnd(state: string): string {
  if (state === 'BATCH_STATE_SUCCEEDED') return 'completed'
  if (state === 'BATCH_STATE_CANCELLED') return 'cancelled'
  if (state === 'BATCH_STATE_EXPIRED') return 'expired'
  if (state === 'BATCH_STATE_FAILED') return 'failed'
  return state
}

/**
 * A batch as its owner sees it: the upstream's Operation under the
 * gateway's name (`batches/gw…`), its model the one the client named (a
 * channel may map it to another).
 */
export function geminiBatchView(row: Pick<BatchObjectRow, 'public_id' | 'model'>, upstream: Record<string, any>): Record<string, any> {
  const view: Record<string, any> = { ...upstream, name: row.public_id }
  const metadata = objectOrNull(upstream.metadata)
  if (metadata !== null) {
    view.metadata = { ...metadata }
    if (metadata.name !== undefined) view.metadata.name = row.public_id
    if (metadata.model !== undefined && row.model !== null) view.metadata.model = `models/${row.model}`
  }
  return view
}

/**
 * A file batch's results file, recorded as the batch owner's Files API file
 * on the batch's channel (provider_files): its owner reads it through `GET
 * /download/v1beta/files/{id}:download` and `files.get`, nobody else. Once:
 * a name already recorded is left as it is.
 */
export async function registerResultsFile(row: BatchObjectRow, name: string) {
  if (row.channel_id === null) return
  const known = await providerFiles.holders([{ kind: 'gemini_file', id: name }])
  if (known.has(holderKey('gemini_file', name))) return
  await providerFiles.insert({
    kind: 'gemini_file',
    upstream_id: name,
    user_id: Number(row.user_id),
    api_key_id: row.api_key_id === null ? null : Number(row.api_key_id),
    channel_id: Number(row.channel_id),
    filename: `${row.public_id} results`,
    mime_type: 'application/jsonl',
    bytes: null,
    model: null,
    status: 'active',
    object: { name, displayName: `${row.public_id} results`, mimeType: 'application/jsonl', state: 'ACTIVE', source: 'GENERATED' },
  })
}
