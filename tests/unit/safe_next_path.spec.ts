import { test } from '@japa/runner'
import { safeNextPath } from '#services/home_path'
import { containsPattern, recordId } from '#services/record_id'

/** Where a redirect may go after login or the language picker: a path of this site, nothing a browser reads as another site. */
test.group('safeNextPath', () => {
  test('keeps paths of this site with their query and fragment', ({ assert }) => {
    assert.equal(safeNextPath('/admin/usage?user=3#top'), '/admin/usage?user=3#top')
    assert.equal(safeNextPath('/dashboard/%2F%2Fevil.com'), '/dashboard/%2F%2Fevil.com')
  })

  test('refuses other sites however they are written', ({ assert }) => {
    for (const value of [
      '//evil.com',
      '/\\evil.com',
      'https://evil.com',
      '%2F%2Fevil.com',
      'javascript:alert(1)',
      '/\t/evil.com',
      '/\n/evil.com',
      ' //evil.com',
      '',
      null,
      ['/admin'],
    ]) {
      assert.isNull(safeNextPath(value), JSON.stringify(value))
    }
  })
})

test.group('recordId', () => {
  test('an id is 1 to 15 digits; anything Postgres would refuse for a bigint is none', ({ assert }) => {
    assert.equal(recordId('42'), 42)
    assert.equal(recordId(' 7 '), 7)
    assert.equal(recordId(999_999_999_999_999), 999_999_999_999_999)
    for (const value of ['0', '-1', '1.5', '1e20', '99999999999999999999', 'abc', '', ['1'], null, undefined, Infinity]) {
      assert.isNull(recordId(value), String(value))
    }
  })

  test('a search text is a literal LIKE pattern', ({ assert }) => {
    assert.equal(containsPattern('50%_off\\'), '%50\\%\\_off\\\\%')
  })
})
