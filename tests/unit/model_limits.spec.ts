import { test } from '@japa/runner'
import { AdminInputError } from '#actions/admin_input_error'
import { limitFor, litellmModelLimits, modelLimitsColumn, modelLimitsFromRow, modelLimitsFromText, modelLimitsText } from '#gateway/limits/model_limits'

test.group('Per-model limits of a key (model_limits.ts)', () => {
  test('LiteLLM maps -> the column, sorted, both kinds on one entry', ({ assert }) => {
    const column = modelLimitsColumn({ 'gpt-4o': 10, 'b': '3' }, { 'gpt-4o': 20000 })
    assert.deepEqual({ ...column }, { 'b': { rpm: 3 }, 'gpt-4o': { rpm: 10, tpm: 20000 } })
    assert.deepEqual(litellmModelLimits(column), { model_rpm_limit: { 'b': 3, 'gpt-4o': 10 }, model_tpm_limit: { 'gpt-4o': 20000 }, model_max_budget: {} })
    assert.isNull(modelLimitsColumn(undefined, undefined))
    assert.isNull(modelLimitsColumn({}, null))
    // One kind given: the other kept from the current column; null in a map drops that model.
    assert.deepEqual({ ...modelLimitsColumn(undefined, { 'gpt-4o': null }, column) }, { 'b': { rpm: 3 }, 'gpt-4o': { rpm: 10 } })
    // Budgets (model_max_budget) ride on the same entries; a map of one kind keeps the budgets, and the reverse.
    const budgeted = modelLimitsColumn(undefined, undefined, column, { 'gpt-4o': { budget_limit: 5, time_period: '24h' }, 'o3': { budget_limit: '20.50' } })
    assert.deepEqual({ ...budgeted }, {
      'b': { rpm: 3 },
      'gpt-4o': { rpm: 10, tpm: 20000, budget: '5', budget_period: 'day' },
      'o3': { budget: '20.5' },
    })
    assert.deepEqual({ ...modelLimitsColumn({ b: 4 }, undefined, budgeted) }, {
      'b': { rpm: 4 },
      'gpt-4o': { tpm: 20000, budget: '5', budget_period: 'day' },
      'o3': { budget: '20.5' },
    })
    assert.deepEqual(litellmModelLimits(budgeted).model_max_budget, {
      'gpt-4o': { budget_limit: 5, time_period: '1d' },
      'o3': { budget_limit: 20.5, time_period: null },
    })
    assert.deepEqual({ ...modelLimitsColumn(undefined, undefined, budgeted, null) }, { 'b': { rpm: 3 }, 'gpt-4o': { rpm: 10, tpm: 20000 } })
  })

  test('__proto__ and constructor are model names, nothing more', ({ assert }) => {
    const column = modelLimitsColumn(JSON.parse('{"__proto__": 5, "constructor": 6}'), undefined)!
    assert.deepEqual(Object.keys(column).sort(), ['__proto__', 'constructor'])
    assert.isUndefined(({} as any).rpm)
    const limits = modelLimitsFromRow(7, JSON.parse(JSON.stringify(column)))!
    assert.equal(limits.get('__proto__')!.rpm, 5)
    assert.equal(limits.get('constructor')!.rpm, 6)
    assert.isUndefined(limits.get('toString'))
    assert.equal(limits.get('__proto__')!.windowId, '7 __proto__')
    const fromText = modelLimitsFromText('__proto__ rpm=1\nhasOwnProperty tpm=2')!
    assert.deepEqual(Object.keys(fromText).sort(), ['__proto__', 'hasOwnProperty'])
    assert.isUndefined(({} as any).tpm)
  })

  test('a row without usable limits is null (one test per request)', ({ assert }) => {
    assert.isNull(modelLimitsFromRow(1, null))
    assert.isNull(modelLimitsFromRow(1, {}))
    assert.isNull(modelLimitsFromRow(1, { m: { rpm: 0 } }))
    assert.isNull(modelLimitsFromRow(1, []))
  })

  test('the panel text: one model a line, checked by the same rules', ({ assert }) => {
    const column = modelLimitsFromText('gpt-4o rpm=10 tpm=20000\n\n  claude-x tpm=5  \r\n')
    assert.equal(modelLimitsText(column), 'claude-x tpm=5\ngpt-4o rpm=10 tpm=20000')
    assert.isNull(modelLimitsFromText(''))
    for (const bad of ['gpt-4o', 'gpt-4o rpm=', 'gpt-4o rpm=0', 'gpt-4o rpm=1e3', 'gpt-4o budget=5/year', 'gpt-4o budget=0', 'gpt-4o budget=-1', 'gpt-4o budget=5/day budget=50', 'gpt-4o budget=5 rpm=1 budget=5', 'm rpm=1\nm tpm=2', `${'x'.repeat(201)} rpm=1`]) {
      let caught: unknown
      try {
        modelLimitsFromText(bad)
      } catch (error) {
        caught = error
      }
      assert.instanceOf(caught, AdminInputError, bad)
      assert.equal((caught as AdminInputError).field, 'modelLimits')
    }
    const many = Array.from({ length: 101 }, (_, i) => `m${i} rpm=1`).join('\n')
    assert.throws(() => modelLimitsFromText(many), /At most 100/)
  })

  test('limitFor: the name as given first, then the spelling the router serves alike', ({ assert }) => {
    const limits = modelLimitsFromRow(3, { 'o3': { rpm: 1 }, 'Claude-X-thinking': { rpm: 2 }, 'gemini-x': { tpm: 9 } })!
    for (const name of ['o3', 'O3', 'o3-high', 'O3-low', 'zai/o3', 'deepseek/O3-medium']) assert.equal(limitFor(limits, name)?.model, 'o3', name)
    assert.equal(limitFor(limits, 'claude-x-thinking')?.model, 'Claude-X-thinking')
    assert.isUndefined(limitFor(limits, 'claude-x'))
    assert.equal(limitFor(limits, 'google/gemini-x-thinking-512')?.windowId, '3 gemini-x')
    // Suffixes stacked, as the router composes them (before: `o3:online` looked up, no limit: o3 rpm=1 called at will).
    for (const name of ['o3:online:nitro', 'o3-high:floor', 'O3:nitro:online']) assert.equal(limitFor(limits, name)?.model, 'o3', name)
    assert.equal(limitFor(limits, 'claude-x-thinking:nitro')?.model, 'Claude-X-thinking')
    // NFD and NFC of one name are one name.
    const accented = modelLimitsFromRow(4, { ['mod\u00e8le']: { rpm: 1 } })!
    assert.equal(limitFor(accented, 'mode\u0300le')?.model, 'mod\u00e8le')
    for (const name of ['o3-mini', 'openrouter/o3', 'google/', 'o', '']) assert.isUndefined(limitFor(limits, name), name)
  })
})
