/**
 * Google's API reads a request's fields in both of proto JSON's spellings:
 * `generation_config.max_output_tokens` is `generationConfig.maxOutputTokens`
 * (REST callers, Python with `requests`, curl examples use the first). The
 * gateway's Gemini types are camelCase, so a translated request in snake_case
 * lost its system instruction, images, tool results and whole config. A
 * passed-through body goes to Google as sent and needs nothing.
 *
 * The keys are rewritten, not the values under keys that hold the client's own
 * names: a function call's `args`, a function response's `response`, and JSON
 * schemas (`parameters`, `response_schema`...), whose property names are data.
 * Nothing is copied when no key has an underscore (the usual camelCase body).
 */
const FREE_FORM = new Set(['args', 'response', 'parameters', 'parametersJsonSchema', 'responseSchema', 'responseJsonSchema'])

/**
 * `max_output_tokens` -> `maxOutputTokens` (each `_` before a lowercase letter
 * or digit), by hand: a regex with a callback per key made the rewrite of a
 * 32 MB body take 2-3x as long as its JSON.parse (about 1 s of the loop).
 */
function camel(key: string): string {
  let out = ''
  let from = 0
  let i = key.indexOf('_')
  while (i >= 0 && i < key.length - 1) {
    const c = key.charCodeAt(i + 1)
    if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57)) {
      out += key.slice(from, i) + (c <= 57 ? key[i + 1] : String.fromCharCode(c - 32))
      from = i + 2
      i = key.indexOf('_', from)
    } else i = key.indexOf('_', i + 1)
  }
  return from === 0 ? key : out + key.slice(from)
}

export function camelCaseKeys<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) {
    let out: unknown[] | null = null
    for (let i = 0; i < value.length; i++) {
      const item = camelCaseKeys(value[i])
      if (item !== value[i] && out === null) out = value.slice(0, i)
      if (out !== null) out.push(item)
    }
    return (out ?? value) as T
  }
  // Object.keys, not entries: one array per object, not one per key.
  const source = value as Record<string, unknown>
  const keys = Object.keys(source)
  let out: Record<string, unknown> | null = null
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]
    const inner = source[key]
    const name = key.includes('_') ? camel(key) : key
    const next = FREE_FORM.has(name) ? inner : camelCaseKeys(inner)
    if (out === null && (name !== key || next !== inner)) {
      out = {}
      for (let j = 0; j < i; j++) if (keys[j] !== '__proto__') out[keys[j]] = source[keys[j]]
    }
    // A body naming a field both ways keeps the camelCase one (the spelling the gateway's own code writes);
    // `__proto__` (an own key after JSON.parse) would set the copy's prototype, not a field: never copied.
    if (out === null || key === '__proto__') continue
    if (!(name !== key && Object.hasOwn(source, name))) out[name] = next
  }
  return (out ?? value) as T
}
