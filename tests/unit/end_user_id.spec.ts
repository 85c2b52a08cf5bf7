import { test } from '@japa/runner'
import { GatewayError } from '#exceptions/gateway_error'
import { endUserFromBody, endUserFromHeaders, isEndUser } from '#gateway/end_users/end_user_id'
import { PendingTotals } from '#gateway/metering/pending_totals'
import { ZERO_USAGE } from '#gateway/types'
import type { MeterEvent } from '#gateway/metering/meter_event'
import { assertWithinLimit, type EndUserPolicy } from '#gateway/end_users/end_user_policies'

function refusal(run: () => unknown): GatewayError {
  try {
    run()
  } catch (error) {
    if (error instanceof GatewayError) return error
    throw error
  }
  throw new Error('expected a refusal')
}

test.group('end user id of a request', () => {
  test('none named: null', ({ assert }) => {
    assert.isNull(endUserFromHeaders({ 'content-type': 'application/json' }))
    assert.isNull(endUserFromBody({ model: 'x', messages: [] }))
    assert.isNull(endUserFromBody({ user: '', metadata: { tags: ['a'] } }))
    // Not a string: the provider judges its own field; no end user for the gateway.
    assert.isNull(endUserFromBody({ user: 42, metadata: { user_id: null }, litellm_metadata: 'x' }))
  })

  test('the header; the body\'s user, then litellm_metadata.user, then metadata.user_id', ({ assert }) => {
    assert.equal(endUserFromHeaders({ 'x-litellm-end-user-id': 'cust-1' }), 'cust-1')
    assert.equal(endUserFromHeaders({ 'x-litellm-end-user-id': ['first', 'second'] }), 'first')
    assert.equal(endUserFromBody({ user: 'a', litellm_metadata: { user: 'b' }, metadata: { user_id: 'c' } }), 'a')
    assert.equal(endUserFromBody({ litellm_metadata: { user: 'b' }, metadata: { user_id: 'c' } }), 'b')
    assert.equal(endUserFromBody({ metadata: { user_id: 'c' } }), 'c')
    // OpenAI's newer field: after `user`, before LiteLLM's and Anthropic's.
    assert.equal(endUserFromBody({ safety_identifier: 's', litellm_metadata: { user: 'b' } }), 's')
    assert.equal(endUserFromBody({ user: 'a', safety_identifier: 's' }), 'a')
    // Kept as sent: case and inner spaces are the app's.
    assert.equal(endUserFromBody({ user: 'Alice Smith@example.com' }), 'Alice Smith@example.com')
    assert.equal(endUserFromBody({ user: 'é'.repeat(128) }), 'é'.repeat(128))
  })

  test('the gateway\'s own fields over 128 characters or with a control character: 400 invalid_end_user naming where it came from', ({ assert }) => {
    const long = refusal(() => endUserFromBody({ litellm_metadata: { user: 'x'.repeat(129) } }))
    assert.equal(long.status, 400)
    assert.equal(long.code, 'invalid_end_user')
    assert.equal(long.param, 'litellm_metadata.user')
    assert.include(long.message, '128')
    assert.equal(refusal(() => endUserFromBody({ litellm_metadata: { user: 'a\u0000' } })).param, 'litellm_metadata.user')
    assert.equal(refusal(() => endUserFromHeaders({ 'x-litellm-end-user-id': 'a\u007f' })).param, 'x-litellm-end-user-id')
    assert.isTrue(isEndUser('ok'))
  })

  test('the providers\' fields are never refused: a long or odd id is kept bounded, distinct from ids that only begin alike', ({ assert }) => {
    // Claude Code's metadata.user_id: a JSON of device, account and session ids, ~200 characters.
    const claude = JSON.stringify({ device_id: 'd'.repeat(64), account_uuid: '0f8e2a3c-1111-2222-3333-444455556666', session_id: '9a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff' })
    const kept = endUserFromBody({ metadata: { user_id: claude } })!
    assert.isAtMost(kept.length, 128)
    assert.isTrue(isEndUser(kept))
    assert.isTrue(kept.startsWith(claude.slice(0, 96)))
    assert.equal(endUserFromBody({ metadata: { user_id: claude } }), kept, 'the same id, the same end user')
    const other = endUserFromBody({ metadata: { user_id: claude.replace('9a1b', '9a1c') } })!
    assert.notEqual(other, kept)
    assert.equal(endUserFromBody({ user: 'x'.repeat(129) })!.length, 96 + 1 + 16)
    const odd = endUserFromBody({ user: 'a\nb' })!
    assert.isTrue(isEndUser(odd))
    assert.isTrue(odd.startsWith('a?b…'))
    assert.isFalse(isEndUser(''))
    assert.isFalse(isEndUser('x'.repeat(129)))
  })
})

test.group('pending end-user cost', () => {
  const event = (userId: number, endUser: string | null, cost: bigint, at: string): MeterEvent => ({
    requestId: 'r',
    userId,
    apiKeyId: null,
    channelId: null,
    provider: null,
    model: 'm',
    requestedModel: null,
    servedModel: null,
    endpoint: 'chat.completions',
    stream: false,
    status: 200,
    errorCode: null,
    usage: ZERO_USAGE,
    costPico: cost,
    latencyMs: 1,
    ttftMs: null,
    createdAt: new Date(at),
    attemptCount: 1,
    attempts: null,
    endUser,
  })

  test('per owner and end user, of calls begun since a day; settled events leave', ({ assert }) => {
    const totals = new PendingTotals()
    const march = event(1, 'alice', 5n, '2026-03-31T23:59:00Z')
    const april = event(1, 'alice', 7n, '2026-04-01T00:01:00Z')
    totals.add(march)
    totals.add(april)
    totals.add(event(2, 'alice', 100n, '2026-04-01T00:01:00Z'))
    totals.add(event(1, null, 1000n, '2026-04-01T00:01:00Z'))
    const aprilStart = Date.parse('2026-04-01T00:00:00Z')
    assert.equal(totals.endUserCost(1, 'alice', aprilStart), 7n)
    assert.equal(totals.endUserCost(1, 'alice', -Infinity), 12n)
    assert.equal(totals.endUserCost(2, 'alice', aprilStart), 100n)
    assert.equal(totals.endUserCost(1, 'bob', -Infinity), 0n)
    totals.settle(april)
    totals.settle(march)
    assert.equal(totals.endUserCost(1, 'alice', -Infinity), 0n)
    assert.isFalse(totals.endUsers.has('1:alice'))
  })
})

test.group('end user monthly limit', () => {
  const policy = (spent: bigint, held: bigint, limit: bigint | null, periodEndsAt = Date.now() + 86_400_000): EndUserPolicy => ({
    id: 1,
    userId: 1,
    endUser: 'cust',
    blocked: false,
    maxBudgetPico: limit,
    softBudgetPico: null,
    spentPico: spent,
    spendPeriod: 'month',
    periodStartsAt: periodEndsAt - 30 * 86_400_000,
    periodEndsAt,
    rpm: null,
    tpm: null,
    budgetId: null,
    heldPico: held,
  })

  test('spend plus holds below the limit passes; at it, 402 end_user_budget_exceeded', ({ assert }) => {
    assert.doesNotThrow(() => assertWithinLimit(policy(4n, 5n, 10n)))
    assert.doesNotThrow(() => assertWithinLimit(policy(100n, 0n, null)))
    const refused = refusal(() => assertWithinLimit(policy(4n, 6n, 10n)))
    assert.equal(refused.status, 402)
    assert.equal(refused.code, 'end_user_budget_exceeded')
    assert.equal(refused.type, 'insufficient_quota')
    const limitOf = policy(10_500_000_000_000n, 0n, 10_500_000_000_000n)
    assert.include(refusal(() => assertWithinLimit(limitOf)).message, '$10.5;')
  })

  test('a new UTC month starts the spend at 0 (holds stay: they are requests in flight)', ({ assert }) => {
    const lastMonth = policy(50n, 0n, 10n, Date.now() - 1000)
    assert.doesNotThrow(() => assertWithinLimit(lastMonth))
    assert.equal(lastMonth.spentPico, 0n)
    assert.isAbove(lastMonth.periodEndsAt, Date.now())
  })
})
