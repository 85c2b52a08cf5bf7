import { test } from '@japa/runner'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/**
 * Billing exactness: what a request costs is what the price table says, to
 * the pico-USD, whichever way its answer came (whole or streamed, with or
 * without the upstream's usage), and the ledger, the balance and the rows
 * agree.
 */

const auth = (key: string) => ({ authorization: `Bearer ${key}` })
const hello = [{ role: 'user', content: 'hello there' }]

/** A whole chat completion with these choices' texts and no usage (some OpenAI-compatible servers send none). */
function chatAnswer(texts: string[]) {
  return JSON.stringify({
    id: 'chatcmpl-raw',
    object: 'chat.completion',
    created: 1,
    model: 'raw',
    choices: texts.map((content, index) => ({ index, message: { role: 'assistant', content }, finish_reason: 'stop' })),
  })
}

test.group('Billing exactness: which price applies', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'one two three' })
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    return () => mock.stop()
  })

  test('two globs as specific match a model: the same one applies before and after either is edited', async ({ assert }) => {
    // Both have 3 literal characters. The rule: the pattern first in code-point order, "*-yz".
    await setPrice({ model: 'ab-*', input: '1', output: '1' })
    await setPrice({ model: '*-yz', input: '2', output: '2' })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })
    const ask = async () => {
      const answer = await post('/v1/chat/completions', { model: 'ab-yz', messages: hello }, auth(user.key))
      assert.equal(answer.status, 200)
      const rows = await usageRows(user.userId)
      return rows[rows.length - 1]
    }
    const first = await ask()
    assert.equal(toPico(first.cost), BigInt(first.prompt_tokens + first.completion_tokens) * 2_000_000n)
    // An edit of the other glob (Postgres moves the edited row to the end of the table) changes nothing.
    await setPrice({ model: 'ab-*', input: '1.5', output: '1' })
    await refreshCaches()
    const second = await ask()
    assert.equal(toPico(second.cost), BigInt(second.prompt_tokens + second.completion_tokens) * 2_000_000n)
    await setPrice({ model: '*-yz', input: '2', output: '2.5' })
    await refreshCaches()
    const third = await ask()
    assert.equal(toPico(third.cost), BigInt(third.prompt_tokens) * 2_000_000n + BigInt(third.completion_tokens) * 2_500_000n)
    // An exact name beats every glob.
    await setPrice({ model: 'ab-yz', input: '7', output: '7' })
    await refreshCaches()
    const exact = await ask()
    assert.equal(toPico(exact.cost), BigInt(exact.prompt_tokens + exact.completion_tokens) * 7_000_000n)
    assert.deepEqual(await ledgerProblems(), [])
  })
})
