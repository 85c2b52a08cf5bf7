/**
 * How much of an upstream's answer the gateway holds at once. Upstreams are
 * the operator's, but they are remote services and proxies that can be
 * broken: an answer that never ends, or an SSE line that never does, would
 * otherwise grow one request's memory until the process runs out of it,
 * taking every other request and its unmetered usage with it. Streams are
 * relayed as they come (no bound on their length, only on one event); a
 * non-streamed answer is read whole, so it has a bound of its own.
 *
 * Generous: the largest real answers are base64 images (a batch of
 * high-resolution images is tens of MB, one streamed partial image a few
 * MB). Configurable in MB through the environment; mutable for tests.
 */
const MB = 1024 * 1024

function megabytes(name: string, fallback: number): number {
  const value = Number(process.env[name])
  return Number.isFinite(value) && value > 0 ? Math.floor(value * MB) : fallback * MB
}

export const answerLimits = {
  /** A non-streamed answer's body, in bytes (UPSTREAM_BODY_MAX_MB) */
  bodyBytes: megabytes('UPSTREAM_BODY_MAX_MB', 128),
  /** One event of a streamed answer (its unfinished line and data), in characters (UPSTREAM_EVENT_MAX_MB) */
  eventChars: megabytes('UPSTREAM_EVENT_MAX_MB', 32),
  /**
   * An error answer's body, in bytes: only its message is read, so the rest
   * is not waited for (the upstream request ends there).
   */
  errorBytes: 64 * 1024,
  /**
   * Bytes of whole answers being read at once by the instance, past the
   * first MB of each (UPSTREAM_INFLIGHT_MAX_MB): the bound above is one
   * answer's, and twenty 100 MB answers read at once (a broken upstream
   * answering every call so) took the process to 4 GB of memory and every
   * other request's latency to seconds. Past it, the answer being read is
   * refused with a 503 `overloaded` (answerBudget below).
   */
  inflightBytes: megabytes('UPSTREAM_INFLIGHT_MAX_MB', 512),
}

/** Every whole answer may hold this much without asking the budget: ordinary answers never touch it. */
export const FREE_ANSWER_BYTES = MB

/** What whole answers being read hold past their free first MB (UpstreamBody.collect takes and gives back). */
export const answerBudget = { used: 0 }

/**
 * Takes from the budget what a whole answer of `length` bytes is built into
 * after its read, until it is written: `copies` of it past the free MB, each
 * about its size (the parsed answer, an image's base64 one string of it; a
 * translated answer's encoding for the client too: 2). A Gemini image answer
 * of 40 MB translated for a chat client held about 160 MB the budget no
 * longer counted once its read gave its bytes back. Throws
 * UpstreamAnswersOverBudget when that is past the budget; returns what was
 * taken, for the caller to give back (answerBudget.used -= it).
 */
export function takeAnswerCopies(length: number, copies: number): number {
  if (length <= FREE_ANSWER_BYTES) return 0
  const more = copies * (length - FREE_ANSWER_BYTES)
  if (answerBudget.used + more > answerLimits.inflightBytes) throw new UpstreamAnswersOverBudget()
  answerBudget.used += more
  return more
}

/** The instance already reads as many large answers as answerLimits.inflightBytes allows. */
export class UpstreamAnswersOverBudget extends Error {
  constructor() {
    super('Too many large upstream answers are being read at once; retry shortly')
  }
}

/** Shown as "32 MB" (or "0.5 MB" for the small bounds tests set). */
export function describeBytes(bytes: number): string {
  const mb = bytes / MB
  return `${Number.isInteger(mb) ? mb : mb.toFixed(2)} MB`
}

/** An upstream answer (or one event of it) past its bound: the read stops there. */
export class UpstreamAnswerTooLarge extends Error {
  constructor(what: string, limit: number) {
    super(`${what} is larger than ${describeBytes(limit)}, the gateway's limit`)
  }
}
