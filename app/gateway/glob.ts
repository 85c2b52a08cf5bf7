/**
 * Model-name globs: `*` matches any run of characters, `?` one character.
 * Case-insensitive. Compiled patterns are memoised: the set of globs in a
 * deployment is small and fixed between configuration changes.
 */
const compiled = new Map<string, RegExp>()

function compile(glob: string): RegExp {
  let re = compiled.get(glob)
  if (!re) {
    const source = glob
      .split('')
      .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\/]/g, '\\$&')))
      .join('')
    re = new RegExp(`^${source}$`, 'i')
    compiled.set(glob, re)
  }
  return re
}

export function globMatches(glob: string, value: string): boolean {
  if (glob === '*') return true
  return compile(glob).test(value)
}

export function anyGlobMatches(globs: readonly string[], value: string): boolean {
  for (const glob of globs) if (globMatches(glob, value)) return true
  return false
}

export function isGlob(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?')
}

/** How specific a pattern is: literal characters count, wildcards do not. */
export function globSpecificity(pattern: string): number {
  return isGlob(pattern) ? pattern.replace(/[*?]/g, '').length : Number.MAX_SAFE_INTEGER
}

/** "a, b ,c" -> ["a","b","c"] */
export function parseGlobList(input: string | undefined | null): string[] {
  if (!input) return []
  return input
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
}
