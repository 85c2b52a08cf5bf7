/**
 * What the seeded fuzz specs share (tests/functional/fuzz*.spec.ts): a small seeded PRNG, random JSON values, the
 * damage done to a valid body, and the checks every error answer must pass (its wire format, no stack trace).
 */

/** mulberry32: small, fast, and the same sequence for the same seed on every machine */
export function prng(seed: number) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

export type Random = ReturnType<typeof prng>
export type WireFormat = 'openai' | 'anthropic' | 'google'

export const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]

export const ODD_STRINGS = [
  '',
  ' ',
  'hello',
  '😀'.repeat(50),
  '\u0000',
  '\ud800',
  'a'.repeat(5000),
  '<script>alert(1)</script>',
  '{"model":"x"}',
  '%00%zz',
  '\r\n\r\nX-Injected: 1',
  'null',
  '../../etc/passwd',
]

/**
 * Random values and damage with the field names a family of endpoints reads (a field added by the damage is one the
 * endpoint may look at, so it reaches the code behind it rather than being ignored).
 */
export function damager(fieldNames: readonly string[]) {
  /** A random JSON value, up to `depth` levels of containers. */
  function randomValue(random: Random, depth = 2): unknown {
    const roll = random()
    if (roll < 0.12) return null
    if (roll < 0.22) return random() < 0.5
    if (roll < 0.36) return pick(random, [0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, 10, 4096])
    if (roll < 0.6) return pick(random, ODD_STRINGS)
    if (depth <= 0) return {}
    if (roll < 0.8) return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, depth - 1))
    const object: Record<string, unknown> = {}
    for (let i = Math.floor(random() * 4); i > 0; i--) object[pick(random, fieldNames)] = randomValue(random, depth - 1)
    if (random() < 0.3) object.type = pick(random, ['text', 'image', 'tool_use', 'tool_result', 'function', 'image_url', 'input_text', 'function_call', 'thinking', 'custom'])
    return object
  }

  /** Replaces, drops or adds a field somewhere in a copy of the body (top level or one level into a list). */
  function damage(random: Random, body: Record<string, any>): Record<string, any> {
    const copy = structuredClone(body)
    const mutations = 1 + Math.floor(random() * 3)
    for (let m = 0; m < mutations; m++) {
      let target: Record<string, any> = copy
      const lists = Object.values(target).filter((v) => Array.isArray(v) && v.length > 0 && v[0] && typeof v[0] === 'object')
      if (lists.length > 0 && random() < 0.5) target = pick(random, lists)[0]
      const keys = Object.keys(target)
      const roll = random()
      if (roll < 0.5 && keys.length > 0) target[pick(random, keys)] = randomValue(random)
      else if (roll < 0.7 && keys.length > 0) delete target[pick(random, keys)]
      else target[pick(random, fieldNames)] = randomValue(random)
    }
    return copy
  }

  return { randomValue, damage }
}

export const STACK_TRACE = /\n\s+at .+[(:]\d+|at async |node_modules|\.ts:\d+/

/** The endpoint's own error envelope: OpenAI `{error:{message,type,code}}`, Anthropic's, Google's. */
export function errorShape(format: WireFormat, body: any): boolean {
  if (!body || typeof body !== 'object') return false
  if (format === 'anthropic') return body.type === 'error' && typeof body.error?.type === 'string' && typeof body.error?.message === 'string'
  if (format === 'google') return typeof body.error?.code === 'number' && typeof body.error?.message === 'string' && typeof body.error?.status === 'string'
  return typeof body.error?.message === 'string' && typeof body.error?.type === 'string' && 'code' in body.error
}

export function parses(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}
