/**
 * How much of a request body the gateway accepts, per endpoint, and how much
 * it holds across all requests at once. Bodies are read whole (the
 * pass-through forwards the client's bytes), so these bounds are what keeps a
 * few huge or slow uploads from taking the process's memory; provider file
 * uploads excepted, streamed as they arrive (streamed_upload.ts).
 *
 * Generous where clients legitimately send a lot (images and long contexts
 * in generation calls), tight where the body is small by nature. Each is
 * configurable in MB through the environment.
 */
const MB = 1024 * 1024

function megabytes(name: string, fallback: number): number {
  const value = Number(process.env[name])
  return Number.isFinite(value) && value > 0 ? Math.floor(value * MB) : fallback * MB
}

/** Generation and token counting: whole conversations, base64 images and documents */
const GENERATION_BYTES = megabytes('BODY_LIMIT_GENERATION_MB', 32)
/** Embeddings and rerank: up to a few thousand inputs / documents */
const EMBEDDINGS_BYTES = megabytes('BODY_LIMIT_EMBEDDINGS_MB', 16)
/**
 * Image generation, speech and a batch's creation: a prompt (a file id) and a
 * few options; the Realtime API's client secrets and WebRTC calls too (a
 * session configuration and an SDP offer of a few KB: a secret's is kept in
 * Postgres until it expires, an offer is relayed whole)
 */
const IMAGES_BYTES = megabytes('BODY_LIMIT_IMAGES_MB', 1)
/** Audio uploads (transcriptions, translations): OpenAI's own limit is 25 MB */
const AUDIO_BYTES = megabytes('AUDIO_MAX_MB', 25)
/** Image edits and variations (multipart uploads): OpenAI takes GPT image files up to 50 MB each (dall-e-2's: 4 MB) */
const IMAGE_UPLOAD_BYTES = megabytes('IMAGE_UPLOAD_MAX_MB', 50)
/** Files API uploads (batch input files, JSONL): OpenAI takes up to 200 MB a batch file */
const FILE_UPLOAD_BYTES = megabytes('FILE_UPLOAD_MAX_MB', 200)
/**
 * A provider's Files API upload (provider_files/): streamed to the upstream
 * as it arrives (streamed_upload.ts), never held whole, so the bound is what
 * the provider takes: Anthropic 500 MB a file, Google 2 GB (a Gemini
 * resumable upload's whole size, checked at its start, and each chunk's).
 * PROVIDER_FILE_MAX_MB, when set, lowers both; ANTHROPIC_FILE_MAX_MB and
 * GEMINI_FILE_MAX_MB set each. Mutable for tests.
 */
const PROVIDER_FILE_CAP = megabytes('PROVIDER_FILE_MAX_MB', Infinity)
export const providerFileLimits = {
  anthropic: Math.min(PROVIDER_FILE_CAP, megabytes('ANTHROPIC_FILE_MAX_MB', 500)),
  google: Math.min(PROVIDER_FILE_CAP, megabytes('GEMINI_FILE_MAX_MB', 2048)),
}
/**
 * A message batch's creation (Anthropic's requests inline, JSON): Anthropic
 * takes 256 MB, but the body is parsed whole here (about three times its size
 * in memory) under the instance's body budget: 100 MB unless raised. Not in
 * bodyLimitFor: the generation endpoints' lookup stays as it was.
 */
export const MESSAGE_BATCH_BYTES = megabytes('MESSAGE_BATCH_MAX_MB', 100)

/**
 * Bytes of request bodies held at once by this instance (reading or in use).
 * A body costs about three times its size while handled (the bytes, the
 * decoded text, the parsed object): 256 MB of bodies is under 1 GB of heap.
 */
export const INFLIGHT_BODY_BYTES = megabytes('BODY_INFLIGHT_MAX_MB', 256)

/** Time limits of a body upload (mutable for tests) */
export const bodyTiming = {
  /** A body not received whole within this time is refused (slow senders hold memory and a slot) */
  timeoutMs: Number(process.env.BODY_TIMEOUT_MS) > 0 ? Number(process.env.BODY_TIMEOUT_MS) : 60_000,
}

/** The body limit of an endpoint (the names RequestAccount records). */
export function bodyLimitFor(endpoint: string): number {
  if (endpoint === 'embeddings' || endpoint === 'rerank' || endpoint.endsWith('mbedContents') || endpoint.endsWith('embedContent')) return EMBEDDINGS_BYTES
  if (endpoint === 'images.generations' || endpoint === 'audio.speech' || endpoint === 'batches' || endpoint === 'realtime') return IMAGES_BYTES
  if (endpoint === 'audio.transcriptions' || endpoint === 'audio.translations') return AUDIO_BYTES
  // A video's creation may carry its first frame (input_reference), an image as large as an edit's.
  if (endpoint === 'images.edits' || endpoint === 'images.variations' || endpoint === 'videos') return IMAGE_UPLOAD_BYTES
  if (endpoint === 'files') return FILE_UPLOAD_BYTES
  return GENERATION_BYTES
}

/**
 * The instance-wide budget of body bytes. A request takes its share as its
 * bytes arrive, before they are buffered (what it has sent so far, never
 * what its Content-Length announces), and gives it back when its response
 * ends.
 */
class BodyBudget {
  used = 0

  constructor(public capacity: number) {}

  tryTake(bytes: number): boolean {
    if (this.used + bytes > this.capacity) return false
    this.used += bytes
    return true
  }

  give(bytes: number) {
    this.used = Math.max(0, this.used - bytes)
  }
}

export const bodyBudget = new BodyBudget(INFLIGHT_BODY_BYTES)
