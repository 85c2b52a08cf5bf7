/**
 * A strict reader of Prometheus' text exposition format 0.0.4, for the
 * /metrics tests: every line is a HELP, a TYPE or a sample of a family
 * declared before it; label values unescaped; no series written twice.
 */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Exposition {
  types: Map<string, string>
  samples: Sample[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {}
  let i = 1
  while (i < text.length - 1) {
    const eq = text.indexOf('=', i)
    const name = text.slice(i, eq)
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name)) throw new Error(`bad label name "${name}" in: ${line}`)
    if (text[eq + 1] !== '"') throw new Error(`label value not quoted in: ${line}`)
    let value = ''
    let j = eq + 2
    for (; text[j] !== '"'; j++) {
      if (j >= text.length) throw new Error(`unterminated label value in: ${line}`)
      if (text[j] === '\\') {
        const next = text[++j]
        if (next === 'n') value += '\n'
        else if (next === '\\' || next === '"') value += next
        else throw new Error(`bad escape \\${next} in: ${line}`)
      } else if (text[j] === '\n') throw new Error(`raw line feed in: ${line}`)
      else value += text[j]
    }
    if (name in labels) throw new Error(`label ${name} twice in: ${line}`)
    labels[name] = value
    i = j + 1
    if (text[i] === ',') i++
    else if (i !== text.length - 1) throw new Error(`expected , or } in: ${line}`)
  }
  return labels
}

function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix) && types.get(name.slice(0, -suffix.length)) === 'histogram') return name.slice(0, -suffix.length)
  }
  return undefined
}

export function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a line feed')
  const types = new Map<string, string>()
  const helps = new Set<string>()
  const samples: Sample[] = []
  const seen = new Set<string>()
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      const name = line.slice(7).split(' ')[0]
      if (!NAME.test(name) || helps.has(name)) throw new Error(`bad or repeated HELP: ${line}`)
      helps.add(name)
      continue
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ')
      if (!NAME.test(name) || types.has(name) || !['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type)) throw new Error(`bad or repeated TYPE: ${line}`)
      if (type === 'counter' && !name.endsWith('_total')) throw new Error(`a counter not ending _total: ${line}`)
      types.set(name, type)
      continue
    }
    const match = SAMPLE.exec(line)
    if (!match) throw new Error(`not a sample line: ${JSON.stringify(line)}`)
    const [, name, labelText, valueText] = match
    if (familyOf(name, types) === undefined) throw new Error(`sample of a family with no TYPE before it: ${line}`)
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText)
    if (Number.isNaN(value) && valueText !== 'NaN') throw new Error(`bad value in: ${line}`)
    const labels = labelText ? parseLabels(labelText, line) : {}
    const identity = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (seen.has(identity)) throw new Error(`series written twice: ${line}`)
    seen.add(identity)
    samples.push({ name, labels, value })
  }
  return { types, samples }
}

/** The samples of `name` whose labels include `where`. */
export function samplesOf(exposition: Exposition, name: string, where: Record<string, string> = {}): Sample[] {
  return exposition.samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
}

/** The sum of those samples' values. */
export function sumOf(exposition: Exposition, name: string, where: Record<string, string> = {}): number {
  return samplesOf(exposition, name, where).reduce((total, s) => total + s.value, 0)
}
