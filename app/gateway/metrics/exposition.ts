/**
 * Prometheus' text exposition format, version 0.0.4: what GET /metrics
 * writes. Only the scrape builds strings; the request path never calls these.
 */

export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** A label value as the format wants it: backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value
}

/** HELP text escapes backslash and line feed only. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

/** `{a="x",b="y"}` from names and values (empty braces left out). */
export function labelSet(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return ''
  let out = '{'
  for (let i = 0; i < names.length; i++) {
    if (i > 0) out += ','
    out += `${names[i]}="${escapeLabelValue(values[i])}"`
  }
  return `${out}}`
}

/** A sample value: integers as integers, the rest as JavaScript prints them; the infinities as Prometheus spells them. */
export function sampleValue(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return '+Inf'
  if (value === Number.NEGATIVE_INFINITY) return '-Inf'
  if (Number.isNaN(value)) return 'NaN'
  return String(value)
}

/** Collects one scrape's text: each family's HELP and TYPE once, then its samples. */
export class ExpositionWriter {
  #out: string[] = []

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string) {
    this.#out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`)
  }

  sample(name: string, labels: string, value: number) {
    this.#out.push(`${name}${labels} ${sampleValue(value)}`)
  }

  /**
   * A histogram's samples from its per-bucket counts (not cumulative; one
   * more than `bounds`, the last for values above every bound): `_bucket`
   * cumulated, `le` last in the label set, then `_sum` and `_count`.
   */
  histogram(name: string, labels: string, bounds: readonly number[], counts: ArrayLike<number>, sum: number) {
    const open = labels === '' ? '{' : `${labels.slice(0, -1)},`
    let cumulative = 0
    for (let i = 0; i < bounds.length; i++) {
      cumulative += counts[i]
      this.#out.push(`${name}_bucket${open}le="${sampleValue(bounds[i])}"} ${cumulative}`)
    }
    cumulative += counts[bounds.length]
    this.#out.push(`${name}_bucket${open}le="+Inf"} ${cumulative}`)
    this.#out.push(`${name}_sum${labels} ${sampleValue(sum)}`, `${name}_count${labels} ${cumulative}`)
  }

  text(): string {
    return this.#out.length === 0 ? '' : `${this.#out.join('\n')}\n`
  }
}
