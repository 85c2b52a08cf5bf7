import { GatewayError } from '#exceptions/gateway_error'

/**
 * Vertex's Gemini reads a part's `fileData.fileUri` itself, and a Cloud
 * Storage URI (`gs://bucket/object`) with the identity of the project the
 * request is billed to: the gateway's own (its service account, its
 * application default credentials), whose service agent reads the
 * project's buckets. A client naming one (a Gemini `fileData`, an OpenAI
 * `image_url`, an earlier answer's `images` sent back) would have Vertex
 * read the operator's files for it. Imagen's `:predict` names them too: an
 * edit's `referenceImage.gcsUri` (read the same way), `parameters.storageUri`
 * (Vertex would write the images to the operator's bucket and answer their
 * URIs, no bytes: unbilled). Any key ending in `uri` (any case) whose value
 * is `gs:` is refused before Vertex is asked; https URLs and inline data go
 * as before (Vertex fetches those as anyone could).
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
  const key = namesStorage(parsed, 0)
  if (key !== null) {
    throw GatewayError.invalidRequest(
      `${key === 'fileUri' ? 'fileData.fileUri' : key}: Cloud Storage URIs (gs://) are not accepted through this gateway (Vertex would read or write them with the gateway's own credentials); send the file inline or by https URL, and take the images as bytes`,
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

/** The key naming a gs:// URI (fileUri, gcsUri, storageUri...), or null */
function namesStorage(value: unknown, depth: number): string | null {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return null
  if (Array.isArray(value)) {
    for (const item of value) {
      const key = namesStorage(item, depth + 1)
      if (key !== null) return key
    }
    return null
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item === 'string') {
      if (/uri$/i.test(key) && /^\s*gs:/i.test(item)) return key
    } else {
      const named = namesStorage(item, depth + 1)
      if (named !== null) return named
    }
  }
  return null
}
