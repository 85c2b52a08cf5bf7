import { GatewayError } from '#exceptions/gateway_error'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { providerFiles, type ProviderFileKind } from '#gateway/provider_files/provider_file_store'

/** An upstream id a generation names: a file or a cache on one channel's account. */
export interface FileReference {
  kind: ProviderFileKind
  id: string
}

const FILE_ID = Buffer.from('file_id')
const FILES = Buffer.from('files/')
const CACHED = Buffer.from('ached')
/** A JSON escape: a key spelt `"file\u005fid"` names file_id too, and must not slip past the owner's check */
const ESCAPE = Buffer.from('\\u')

/** The walk's depth bound (the body's nesting is bounded already: json_guard.ts) */
const MAX_DEPTH = 64

/**
 * The file ids an Anthropic Messages body names: `file_id` anywhere in its
 * messages (a document's or image's `source: {type: "file"}`, a
 * `container_upload` block, either inside a tool result). A body whose
 * bytes hold neither `file_id` nor a `\u` escape names none: that one byte
 * search (memchr speed) is all such a request pays.
 */
export function anthropicFileReferences(rawBody: Buffer, body: Record<string, any>): FileReference[] | null {
  if (rawBody.indexOf(FILE_ID) < 0 && rawBody.indexOf(ESCAPE) < 0) return null
  const ids = new Set<string>()
  collectFileIds(body.messages, ids, 0)
  if (ids.size === 0) return null
  return [...ids].map((id) => ({ kind: 'anthropic_file', id }))
}

function collectFileIds(value: unknown, ids: Set<string>, depth: number) {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return
  if (Array.isArray(value)) {
    for (const item of value) collectFileIds(item, ids, depth + 1)
    return
  }
  for (const key in value) {
    const member = (value as Record<string, unknown>)[key]
    if (key === 'file_id' && typeof member === 'string' && member !== '') ids.add(member)
    else collectFileIds(member, ids, depth + 1)
  }
}

/**
 * The Files API files (`fileData.fileUri`, or `file_data.file_uri`, naming
 * `files/{id}` by URI or by name) and the cache (`cachedContent`) a Gemini
 * generateContent body names. A body without `files/`, `ached` or a `\u`
 * escape in its bytes names none.
 */
export function geminiFileReferences(rawBody: Buffer, body: Record<string, any>): FileReference[] | null {
  if (rawBody.indexOf(FILES) < 0 && rawBody.indexOf(CACHED) < 0 && rawBody.indexOf(ESCAPE) < 0) return null
  const refs: FileReference[] = []
  const cache = body.cachedContent ?? body.cached_content
  if (typeof cache === 'string') {
    const name = resourceName(cache, 'cachedContents/')
    if (name !== null) refs.push({ kind: 'gemini_cache', id: name })
  }
  const contents = Array.isArray(body.contents) ? body.contents : []
  for (const content of contents) {
    const parts = Array.isArray(content?.parts) ? content.parts : []
    for (const part of parts) {
      const data = part?.fileData ?? part?.file_data
      const uri = data?.fileUri ?? data?.file_uri
      if (typeof uri !== 'string') continue
      const name = resourceName(uri, 'files/')
      if (name !== null && !refs.some((r) => r.id === name)) refs.push({ kind: 'gemini_file', id: name })
    }
  }
  return refs.length === 0 ? null : refs
}

/**
 * `files/{id}` (`cachedContents/{id}`) out of a name or a URI
 * (`https://generativelanguage.googleapis.com/v1beta/files/{id}`, a query
 * after it); null for anything else (a `gs://` object, another URL).
 */
export function resourceName(value: string, prefix: 'files/' | 'cachedContents/'): string | null {
  if (value.startsWith('gs://')) return null
  const at = value.lastIndexOf(prefix)
  if (at < 0 || (at > 0 && value[at - 1] !== '/')) return null
  const match = /^[A-Za-z0-9_-]{1,128}/.exec(value.slice(at + prefix.length))
  return match === null ? null : prefix + match[0]
}

/**
 * The route narrowed to the channel that holds each named file or cache
 * (its provider account is the only one that can read it). An id no row
 * names goes as it would have (uploaded to the provider straight, or not a
 * file at all: the upstream says). Another user's id, or a deleted one, is
 * the endpoint's 404; a route without the holding channel (the model is
 * served elsewhere, or only through translation) the endpoint's 400.
 */
export async function pinnedCandidates(candidates: RouteCandidate[], refs: FileReference[], userId: number, model: string): Promise<RouteCandidate[]> {
  let kept = candidates
  for (const ref of refs) {
    const holder = await providerFiles.holder(ref.kind, ref.id)
    if (holder === null) continue
    if (holder.userId !== userId || holder.deleted) throw notFound(ref)
    kept = kept.filter((c) => c.channel.id === holder.channelId)
    if (kept.length === 0) {
      const error = GatewayError.invalidRequest(
        `'${ref.id}' is held by a channel that does not serve '${model}' here: a provider's ${ref.kind === 'gemini_cache' ? 'cache' : 'file'} ` +
          `can be read only on the account it was made on, natively (not through a translated route). Use a model that channel serves, or upload it again.`,
        'file_not_on_route'
      )
      throw error
    }
  }
  return kept
}

/** The endpoint's 404 for a file or cache the caller does not own (or deleted). */
export function notFound(ref: FileReference): GatewayError {
  const what = ref.kind === 'gemini_cache' ? 'Cached content' : 'File'
  return new GatewayError(404, 'file_not_found', `${what} not found: ${ref.id.slice(0, 160)}`, 'not_found_error')
}
