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

function camel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())
}

export function camelCaseKeys<T>(value: T): T {
  if (Array.isArray(value)) {
    let out: unknown[] | null = null
    for (let i = 0; i < value.length; i++) {
      const item = camelCaseKeys(value[i])
      if (item !== value[i] && out === null) out = value.slice(0, i)
      if (out !== null) out.push(item)
    }
    return (out ?? value) as T
  }
  if (value === null || typeof value !== 'object') return value
  let out: Record<string, unknown> | null = null
  const entries = Object.entries(value as Record<string, unknown>)
  for (let i = 0; i < entries.length; i++) {
    const [key, inner] = entries[i]
    const name = key.includes('_') ? camel(key) : key
    const next = FREE_FORM.has(name) ? inner : camelCaseKeys(inner)
    if (out === null && (name !== key || next !== inner)) {
      out = {}
      for (let j = 0; j < i; j++) if (entries[j][0] !== '__proto__') out[entries[j][0]] = entries[j][1]
    }
    // A body naming a field both ways keeps the camelCase one (the spelling the gateway's own code writes);
    // `__proto__` (an own key after JSON.parse) would set the copy's prototype, not a field: never copied.
    if (out === null || key === '__proto__') continue
    if (!(name !== key && Object.hasOwn(value as object, name))) out[name] = next
  }
  return (out ?? value) as T
}
