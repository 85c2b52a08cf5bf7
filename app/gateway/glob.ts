/**
 * Model-name globs: `*` matches any run of characters, `?` one character.
 * Case-insensitive.
 *
 * Matched by a two-pointer walk, not a regular expression: globs come from
 * users too (a portal user's key model list), and `*a*a*a*a*b` compiled to
 * `^.*a.*a.*a.*a.*b$` backtracks exponentially in the stars: against a
 * 200-character model name it held the event loop 24 s, every request. The
 * walk goes back only to the last star, so a match costs at most
 * (pattern length x name length) steps.
 */
export function globMatches(glob: string, value: string): boolean {
  if (glob === '*') return true
  const p = glob.length
  const n = value.length
  let i = 0 // in value
  let j = 0 // in glob
  let star = -1 // glob index of the last star
  let resume = 0 // value index that star's run ends at so far
  while (i < n) {
    if (j < p) {
      const g = glob.charCodeAt(j)
      if (g === 42 /* * */) {
        star = j++
        resume = i
        continue
      }
      if (g === 63 /* ? */ || sameLetter(g, value.charCodeAt(i))) {
        i++
        j++
        continue
      }
    }
    if (star === -1) return false
    // Let the last star take one more character, and match the rest again from there.
    j = star + 1
    i = ++resume
  }
  while (j < p && glob.charCodeAt(j) === 42) j++
  return j === p
}

/** Equal ignoring case (ASCII by arithmetic; anything else through toLowerCase, rare in model names). */
function sameLetter(a: number, b: number): boolean {
  if (a === b) return true
  if (a < 128 && b < 128) {
    const la = a >= 65 && a <= 90 ? a + 32 : a
    const lb = b >= 65 && b <= 90 ? b + 32 : b
    return la === lb
  }
  return String.fromCharCode(a).toLowerCase() === String.fromCharCode(b).toLowerCase()
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
