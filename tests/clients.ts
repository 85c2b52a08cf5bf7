import Anthropic from '@anthropic-ai/sdk'
import { GoogleGenAI } from '@google/genai'
import { baseUrl } from '#tests/helpers'

/** Official SDK clients pointed at the gateway under test (no retries: failures show at once). */
export function anthropic(key: string) {
  return new Anthropic({ apiKey: key, baseURL: baseUrl(), maxRetries: 0 })
}

export function genai(key: string) {
  return new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: baseUrl() } })
}

/**
 * The error an SDK call fails with: its status, the API's error object (the
 * OpenAI and Anthropic SDKs' `error`) and its message (@google/genai's). Give
 * it the call as it starts: a promise left unawaited while another is, and
 * rejected, fails the run.
 */
export async function failure(call: Promise<unknown>): Promise<{ status: number; error: any; message: string }> {
  try {
    await call
  } catch (error: any) {
    return { status: error.status, error: error.error, message: String(error.message) }
  }
  throw new Error('the call succeeded')
}

/** Reads a whole SSE body into [event, parsed data] pairs. */
export function parseSse(text: string): Array<{ event?: string; data: any }> {
  const events: Array<{ event?: string; data: any }> = []
  for (const block of text.split(/\r?\n\r?\n/)) {
    let event: string | undefined
    const data: string[] = []
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith('event:')) event = line.slice(6).trim()
      else if (line.startsWith('data:')) data.push(line.slice(5).trimStart())
    }
    if (data.length === 0) continue
    const joined = data.join('\n')
    let parsed: any = joined
    try {
      parsed = JSON.parse(joined)
    } catch {}
    events.push({ event, data: parsed })
  }
  return events
}
