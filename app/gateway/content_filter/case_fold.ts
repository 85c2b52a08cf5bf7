/**
 * Case folding by UTF-16 code unit, as a table built once per process
 * (128 KB): the matcher folds the text one unit at a time as it reads it,
 * instead of lowercasing a copy of each prompt. A unit whose lowercase is
 * not one unit (rare: 'İ') stays as it is.
 */
let table: Uint16Array | null = null

export function foldTable(): Uint16Array {
  if (table !== null) return table
  const built = new Uint16Array(0x10000)
  for (let unit = 0; unit < 0x10000; unit++) {
    // Lone surrogates have no case; String.fromCharCode keeps them as they are.
    const lower = String.fromCharCode(unit).toLowerCase()
    built[unit] = lower.length === 1 ? lower.charCodeAt(0) : unit
  }
  table = built
  return built
}

/** A string folded as the matcher folds text. */
export function foldString(text: string): string {
  const fold = foldTable()
  let out = ''
  for (let i = 0; i < text.length; i++) out += String.fromCharCode(fold[text.charCodeAt(i)])
  return out
}
