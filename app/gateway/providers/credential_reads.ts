import { constants } from 'node:fs'
import { open } from 'node:fs/promises'

/**
 * Bounded reads for the credential chains (aws_credentials.ts,
 * google_adc.ts). Their sources are files and link-local HTTP endpoints the
 * operator's environment names, but a wrong path or a broken endpoint must
 * not take the gateway down: readFile() on a FIFO waits for a writer forever
 * (the chain's one fetch in flight never settles, every later request waits
 * on it, and a libuv thread stays blocked in open()), on a device or a huge
 * file it reads until memory runs out; Response.text() of an answer that
 * never ends buffers all of it until the call's timeout (hundreds of MB a
 * second on a local link).
 */

/** A credentials file, a token file, a profile: a few KB; gcloud's largest well under this */
export const MAX_CREDENTIAL_FILE = 1024 * 1024

/**
 * A regular file's text, at most `maxBytes`. Opened without blocking (a
 * FIFO opens at once, and is then refused by its type). Errors carry a
 * `code`: the system's (ENOENT...), or what is wrong with the file.
 */
export async function readCredentialFile(path: string, maxBytes = MAX_CREDENTIAL_FILE): Promise<string> {
  const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
  try {
    const stat = await file.stat()
    if (!stat.isFile()) throw problem('not a regular file')
    if (stat.size > maxBytes) throw problem(`larger than ${maxBytes} bytes`)
    // Read to its end, in case it grew since its size was read; no further than the bound.
    const buffer = Buffer.alloc(maxBytes + 1)
    let length = 0
    while (length < buffer.length) {
      const { bytesRead } = await file.read(buffer, length, buffer.length - length, length)
      if (bytesRead === 0) break
      length += bytesRead
    }
    if (length > maxBytes) throw problem(`larger than ${maxBytes} bytes`)
    return buffer.toString('utf8', 0, length)
  } finally {
    await file.close()
  }
}

function problem(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code })
}

/**
 * An answer's text, its first `maxBytes` only: the rest is not read (the
 * connection is dropped). What a credentials answer cut there says is
 * judged by its reader (not JSON: no usable credentials).
 */
export async function boundedText(response: Response, maxBytes: number): Promise<string> {
  const body = response.body
  if (body === null) return ''
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let length = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    chunks.push(value)
    length += value.length
    if (length >= maxBytes) {
      await reader.cancel().catch(() => {})
      break
    }
  }
  const all = Buffer.concat(chunks, length)
  return all.toString('utf8', 0, Math.min(length, maxBytes))
}

/** A call to a credentials endpoint: its own time limit, no redirect followed. */
export interface CredentialCall {
  method: string
  headers: Record<string, string>
  body?: string
  timeoutMs: number
}

/**
 * One bounded HTTP call of a credential chain: at most `maxBytes` of the
 * answer read (boundedText), within `timeoutMs`, redirects not followed (a
 * metadata endpoint sending the credentials' request elsewhere is broken).
 * A network failure or timeout throws; `unreachableReason` says it in words.
 */
export async function boundedFetch(url: string, init: CredentialCall, maxBytes: number) {
  const response = await fetch(url, {
    method: init.method,
    headers: init.headers,
    body: init.body,
    redirect: 'manual',
    signal: AbortSignal.timeout(init.timeoutMs),
  })
  return { status: response.status, text: await boundedText(response, maxBytes), headers: response.headers }
}

/** Why a boundedFetch failed: its timeout, else the network's code (ECONNREFUSED...) or message */
export function unreachableReason(error: unknown, timeoutMs: number): string {
  if ((error as Error).name === 'TimeoutError') return `no answer within ${timeoutMs} ms`
  const cause = (error as { cause?: { code?: string; message?: string } }).cause
  return cause?.code ?? cause?.message ?? (error as Error).message
}

/**
 * A credential's part as it may go in a header or a signature: printable
 * ASCII without spaces (access key ids, secrets, session tokens and OAuth
 * tokens all are). Anything else (CR/LF, a space, a control or non-ASCII
 * character) is a broken source: Node refuses such a header, and a value
 * with CR/LF would say more than the credential.
 */
export function isCredentialText(value: string): boolean {
  return CREDENTIAL_TEXT.test(value)
}

const CREDENTIAL_TEXT = /^[\x21-\x7e]+$/
