import { GatewayError } from '#exceptions/gateway_error'

/**
 * Vertex's Gemini reads a part's `fileData.fileUri` itself, and a Cloud
 * Storage URI (`gs://bucket/object`) with the identity of the project the
 * request is billed to: the gateway's own (its service account, its
 * application default credentials), whose service agent reads the
 * project's buckets. A client naming one (a Gemini `fileData`, an OpenAI
 * `image_url`, an earlier answer's `images` sent back) would have Vertex
 * read the operator's files for it. Refused before Vertex is asked; https
 * URLs and inline data go as before (Vertex fetches those as anyone could).
 *
 * Per Vertex Gemini request: a few byte scans of the body; it is parsed only
 * when one finds a `gs:` (any case) or a JSON escape (`\u`, which could
 * spell the scheme).
 */
export function assertNoStorageUris(body: string | Buffer) {
  if (!mayNameStorage(body)) return
  let parsed: unknown
  try {
    parsed = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'))
  } catch {
    return
  }
  if (namesStorage(parsed, 0)) {
    throw GatewayError.invalidRequest(
      "fileData.fileUri: Cloud Storage URIs (gs://) are not accepted through this gateway (Vertex would read them with the gateway's own credentials); send the file inline or by https URL",
      'unsupported_file_uri'
    )
  }
}

const TEXT_NEEDLES = ['gs:', 'GS:', 'Gs:', 'gS:', '\\u']
const NEEDLES = TEXT_NEEDLES.map((text) => Buffer.from(text))

/** Searched as it is (a translated body is a string, a passed-through one the client's bytes): no copy, no closure. */
function mayNameStorage(body: string | Buffer): boolean {
  if (typeof body === 'string') {
    for (const needle of TEXT_NEEDLES) if (body.includes(needle)) return true
    return false
  }
  for (const needle of NEEDLES) if (body.includes(needle)) return true
  return false
}

/** JSON nests no deeper than this in a request the gateway parsed already (a deeper one names nothing here) */
const MAX_DEPTH = 64

function namesStorage(value: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return false
  if (Array.isArray(value)) {
    for (const item of value) if (namesStorage(item, depth + 1)) return true
    return false
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item === 'string') {
      if ((key === 'fileUri' || key === 'file_uri') && /^\s*gs:/i.test(item)) return true
    } else if (namesStorage(item, depth + 1)) return true
  }
  return false
}
