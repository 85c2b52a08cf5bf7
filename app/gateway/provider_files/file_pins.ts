import { GatewayError } from '#exceptions/gateway_error'
import type { DialectName } from '#gateway/dialects/canonical'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { holderKey, providerFiles, type ProviderFileKind, type ProviderFileRow } from '#gateway/provider_files/provider_file_store'

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
/** JSON's escaped slash: `"files\/abc"` is `files/abc` once parsed (PHP's json_encode writes every slash so) */
const SLASH = Buffer.from('\\/')

/** The longest upstream id recorded (provider_files.upstream_id; an upload answering a longer one is refused) */
const MAX_ID = 255

/** The walk's depth bound (the body's nesting is bounded already: json_guard.ts) */
const MAX_DEPTH = 64

/** Where a Gemini body names a file: a part's `fileData` (in contents, a system instruction, anywhere Google reads parts) */
const GEMINI_URI_KEYS = new Set(['fileUri', 'file_uri'])
/**
 * Where another wire names a URL its translation hands Google as
 * `fileData.fileUri` (OpenAI's `image_url.url` and `file_url`, Anthropic's
 * `source.url`, Responses' `image_url` and `file_url`): a Files API URI
 * there reads that file on a google channel as a native part would.
 */
const URL_KEYS = new Set(['url', 'image_url', 'file_url', 'fileUri', 'file_uri'])

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
    // An id longer than any recorded one (the column's 255) is no row's: not looked up nor remembered (memory).
    if (key === 'file_id' && typeof member === 'string') {
      if (member !== '' && member.length <= MAX_ID) ids.add(member)
    } else collectFileIds(member, ids, depth + 1)
  }
}

/**
 * The Files API files (`fileData.fileUri`, or `file_data.file_uri`, naming
 * `files/{id}` by URI or by name, wherever parts are: contents, a system
 * instruction) and the cache (`cachedContent`) a Gemini generateContent
 * body names. A body without `files/`, `ached`, a `\u` or a `\/` escape in
 * its bytes names none.
 */
export function geminiFileReferences(rawBody: Buffer, body: Record<string, any>): FileReference[] | null {
  if (rawBody.indexOf(FILES) < 0 && rawBody.indexOf(CACHED) < 0 && rawBody.indexOf(ESCAPE) < 0 && rawBody.indexOf(SLASH) < 0) return null
  const refs: FileReference[] = []
  // countTokens (and a batch line) may wrap the request: its cache is inside `generateContentRequest`.
  const inner = body.generateContentRequest ?? body.generate_content_request
  for (const request of [body, inner]) {
    const cache = request?.cachedContent ?? request?.cached_content
    if (typeof cache !== 'string') continue
    const name = resourceName(cache, 'cachedContents/')
    if (name !== null && !refs.some((r) => r.id === name)) refs.push({ kind: 'gemini_cache', id: name })
  }
  const names = new Set<string>()
  collectFileUris(body, GEMINI_URI_KEYS, names, 0)
  for (const id of names) refs.push({ kind: 'gemini_file', id })
  return refs.length === 0 ? null : refs
}

/**
 * The files and caches a body of an ingress names, for a route of these
 * candidates (generations and token counts alike): Anthropic's `file_id`s,
 * Gemini's `fileData` and `cachedContent`, and, when a google channel is
 * among the candidates, Files API URIs in other wires' URL parts. Null
 * when it names none (one byte search for most bodies).
 */
export function fileReferencesOf(ingress: DialectName, rawBody: Buffer, body: Record<string, any>, candidates: readonly RouteCandidate[]): FileReference[] | null {
  if (ingress === 'anthropic_messages') {
    const ids = anthropicFileReferences(rawBody, body)
    if (!candidates.some((c) => c.channel.provider === 'google')) return ids
    const urls = urlFileReferences(rawBody, body)
    return urls === null ? ids : ids === null ? urls : [...ids, ...urls]
  }
  if (ingress === 'gemini') return geminiFileReferences(rawBody, body)
  return candidates.some((c) => c.channel.provider === 'google') ? urlFileReferences(rawBody, body) : null
}

/**
 * Gemini Files API files another wire names by URL (see URL_KEYS), for a
 * route with a google channel among its candidates (only Google reads
 * them). A body without `files/` or an escape in its bytes names none.
 */
export function urlFileReferences(rawBody: Buffer, body: Record<string, any>): FileReference[] | null {
  if (rawBody.indexOf(FILES) < 0 && rawBody.indexOf(ESCAPE) < 0 && rawBody.indexOf(SLASH) < 0) return null
  const names = new Set<string>()
  collectFileUris(body, URL_KEYS, names, 0)
  if (names.size === 0) return null
  return [...names].map((id) => ({ kind: 'gemini_file', id }))
}

function collectFileUris(value: unknown, keys: ReadonlySet<string>, names: Set<string>, depth: number) {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return
  if (Array.isArray(value)) {
    for (const item of value) collectFileUris(item, keys, names, depth + 1)
    return
  }
  for (const key in value) {
    const member = (value as Record<string, unknown>)[key]
    if (typeof member === 'string') {
      // A data URL's base64 may hold `/files/` by chance: it names no file.
      if (keys.has(key) && !member.startsWith('data:')) {
        const name = resourceName(member, 'files/')
        // Another wire's URL names a file only when the name ends it (`.../files/abc`, a query after): not `/files/photo.png`.
        if (name !== null && (keys === GEMINI_URI_KEYS || endsAt(member, name))) names.add(name)
      }
    } else collectFileUris(member, keys, names, depth + 1)
  }
}

function endsAt(value: string, name: string): boolean {
  const after = value.lastIndexOf(name) + name.length
  return after === value.length || value[after] === '?' || value[after] === '#'
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
  // One read for all the ids not remembered (a body may name thousands: one read each took 1.7 s for 3,000).
  const holders = await providerFiles.holders(refs)
  for (const ref of refs) {
    const holder = holders.get(holderKey(ref.kind, ref.id))
    if (holder === undefined) continue
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

/** The caller's file or cache of this kind (a deleted one, another user's, one never recorded: the wire's 404). */
export async function ownedOr404(kind: ProviderFileKind, userId: number, id: string): Promise<ProviderFileRow> {
  const row = await providerFiles.owned(kind, userId, id)
  if (row === null) throw notFound({ kind, id })
  return row
}
