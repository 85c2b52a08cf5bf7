/**
 * How long a refused client should wait, as two headers: `Retry-After` in
 * whole seconds (HTTP's, rounded up, at least 1) and `retry-after-ms`, the
 * exact wait in milliseconds. The OpenAI and Anthropic SDKs read
 * `retry-after-ms` first (parseFloat, before `Retry-After`; the Anthropic SDK
 * takes any positive delay one timer holds, the OpenAI SDK any), so they
 * retry when the window or cool-down ends instead of up to a second later.
 * A value of 0 would send them back to `Retry-After`: at least 1 ms.
 */
export function retryAfterHeaders(ms: number): { 'retry-after': string; 'retry-after-ms': string } {
  const exact = Number.isFinite(ms) && ms > 1 ? Math.ceil(ms) : 1
  return { 'retry-after': String(Math.ceil(exact / 1000)), 'retry-after-ms': String(exact) }
}
