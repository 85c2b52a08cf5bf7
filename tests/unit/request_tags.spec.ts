import { test } from '@japa/runner'
import { GatewayError } from '#exceptions/gateway_error'
import { tagsFromHeaders, withBodyTags } from '#gateway/metering/request_tags'

function refusal(run: () => unknown): GatewayError {
  try {
    run()
  } catch (error) {
    if (error instanceof GatewayError) return error
    throw error
  }
  throw new Error('expected a refusal')
}

test.group('request tags', () => {
  test('no tag header: null', ({ assert }) => {
    assert.isNull(tagsFromHeaders({ 'content-type': 'application/json' }))
    assert.isNull(withBodyTags(null, { model: 'x', messages: [] }))
    assert.isNull(withBodyTags(null, { metadata: { user: 'u' } }))
  })

  test('trimmed, case kept, empties dropped, duplicates once, both headers merged in order', ({ assert }) => {
    assert.deepEqual(tagsFromHeaders({ 'x-gateway-tags': ' Team-A , feature:search,, prod/eu ' }), ['Team-A', 'feature:search', 'prod/eu'])
    assert.deepEqual(tagsFromHeaders({ 'x-gateway-tags': 'a,b', 'x-litellm-tags': 'b, c' }), ['a', 'b', 'c'])
    assert.deepEqual(tagsFromHeaders({ 'x-litellm-tags': 'team-a' }), ['team-a'])
    assert.deepEqual(tagsFromHeaders({ 'x-gateway-tags': 'A,a' }), ['A', 'a'])
    assert.isNull(tagsFromHeaders({ 'x-gateway-tags': ' , ' }))
  })

  test('body metadata.tags: an array or a comma string, added after the headers', ({ assert }) => {
    assert.deepEqual(withBodyTags(['h'], { metadata: { tags: ['b1', ' b2 ', 'h'] } }), ['h', 'b1', 'b2'])
    assert.deepEqual(withBodyTags(null, { metadata: { tags: 'x, y' } }), ['x', 'y'])
    assert.deepEqual(withBodyTags(null, { metadata: { tags: [] } }), null)
  })

  test('bad tags are invalid_tags 400s', ({ assert }) => {
    for (const bad of ['has space', 'semi;colon', 'é', 'x'.repeat(65)]) {
      const error = refusal(() => tagsFromHeaders({ 'x-gateway-tags': `ok,${bad}` }))
      assert.equal(error.status, 400)
      assert.equal(error.code, 'invalid_tags')
    }
    assert.deepEqual(tagsFromHeaders({ 'x-gateway-tags': 'x'.repeat(64) }), ['x'.repeat(64)])
    const eleven = Array.from({ length: 11 }, (_, i) => `t${i}`).join(',')
    assert.equal(refusal(() => tagsFromHeaders({ 'x-gateway-tags': eleven })).code, 'invalid_tags')
    assert.equal(refusal(() => withBodyTags(null, { metadata: { tags: [1] } })).code, 'invalid_tags')
    assert.equal(refusal(() => withBodyTags(null, { metadata: { tags: { a: 1 } } })).code, 'invalid_tags')
    // Ten across the header and the body are fine; the eleventh is not.
    const ten = Array.from({ length: 10 }, (_, i) => `t${i}`)
    assert.lengthOf(withBodyTags(tagsFromHeaders({ 'x-gateway-tags': ten.slice(0, 5).join(',') }), { metadata: { tags: ten.slice(5) } })!, 10)
    assert.equal(refusal(() => withBodyTags([...ten], { metadata: { tags: ['t10'] } })).code, 'invalid_tags')
  })
})
