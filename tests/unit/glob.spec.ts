import { test } from '@japa/runner'
import { globMatches, anyGlobMatches } from '#gateway/glob'

/** The reference: the glob as a regular expression (what the gateway used before), fine on short inputs. */
function byRegExp(glob: string, value: string): boolean {
  const source = glob
    .split('')
    .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\/]/g, '\\$&')))
    .join('')
  return new RegExp(`^${source}$`, 'i').test(value)
}

test.group('Model-name globs', () => {
  test('match as the regular expression does, on every small pattern and name', ({ assert }) => {
    const alphabet = ['a', 'B', '-', '*', '?']
    const words: string[] = ['']
    for (let length = 1; length <= 4; length++) {
      for (const w of words.filter((x) => x.length === length - 1)) for (const c of alphabet) words.push(w + c)
    }
    const names = words.filter((w) => !w.includes('*') && !w.includes('?'))
    for (const glob of words) {
      for (const name of names) assert.equal(globMatches(glob, name), byRegExp(glob, name), `${glob} on ${name}`)
    }
  })

  test('real patterns, case-insensitively', ({ assert }) => {
    assert.isTrue(globMatches('gpt-4o*', 'GPT-4o-mini'))
    assert.isTrue(globMatches('claude-*-sonnet-*', 'claude-3-5-sonnet-20241022'))
    assert.isTrue(globMatches('gemini-?.?-flash', 'gemini-2.5-flash'))
    assert.isFalse(globMatches('gemini-?.?-flash', 'gemini-2.5-flash-lite'))
    assert.isTrue(globMatches('*', ''))
    assert.isTrue(globMatches('modèle-*', 'MODÈLE-x'))
    assert.isTrue(anyGlobMatches(['x', 'o?-*'], 'o1-preview'))
  })

  test('a pattern of many stars against a long name that does not match returns (no backtracking blow-up)', ({ assert }) => {
    // As a regular expression, 4 stars here took 24 s; 20 would never end.
    const glob = '*a'.repeat(20) + '*b'
    assert.isFalse(globMatches(glob, 'a'.repeat(200)))
    assert.isTrue(globMatches(glob, `${'a'.repeat(200)}b`))
  })
})
