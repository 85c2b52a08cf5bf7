import { test } from '@japa/runner'
import i18nManager from '@adonisjs/i18n/services/main'
import { formatCost, formatMoney, formatUsd, formatUsdExact, moneyDigits, sumUsd } from '#services/format'
import { localeFormatters } from '#services/locale'

/**
 * One money rule for the admin panel and the portal: "$0.5682" no longer
 * sits next to "$4.73" in a card row or a column of totals.
 */
test.group('Money on the pages: summary figures', () => {
  test('cents for any amount of at least one cent', ({ assert }) => {
    assert.equal(formatUsd('4.73'), '$4.73')
    assert.equal(formatUsd('0.5682'), '$0.57')
    assert.equal(formatUsd('0.05'), '$0.05')
    assert.equal(formatUsd('0.01'), '$0.01')
    assert.equal(formatUsd('0.009999'), '$0.01', 'rounds up to a cent: cents, not $0.0100')
    assert.equal(formatUsd('1234.5'), '$1,234.50')
    assert.equal(formatUsd('1000000'), '$1,000,000.00')
    assert.equal(formatUsd('-0.25'), '-$0.25')
    assert.equal(formatUsd(12.345), '$12.35')
  })

  test('under a cent: two significant digits, at most 6 decimals, never $0.00', ({ assert }) => {
    assert.equal(formatUsd('0.0042'), '$0.0042')
    assert.equal(formatUsd('0.004237'), '$0.0042')
    assert.equal(formatUsd('0.001'), '$0.001')
    assert.equal(formatUsd('0.000031'), '$0.000031')
    assert.equal(formatUsd('0.0000314'), '$0.000031')
    assert.equal(formatUsd('0.0000012'), '$0.000001')
    assert.equal(formatUsd('0.000001'), '$0.000001')
    assert.equal(formatUsd('0.000000000001'), '<$0.000001')
    assert.equal(formatUsd('-0.0000001'), '>-$0.000001')
    assert.equal(formatUsd('-0.0042'), '-$0.0042')
  })

  test('zero (and what is not a number) is $0.00', ({ assert }) => {
    assert.equal(formatUsd('0'), '$0.00')
    assert.equal(formatUsd('0.000000000000'), '$0.00')
    assert.equal(formatUsd(-0), '$0.00')
    assert.equal(formatUsd(null), '$0.00')
    assert.equal(formatUsd(undefined), '$0.00')
    assert.equal(formatUsd('abc'), '$0.00')
  })

  test('one row of cards reads alike: balance, spend, a tiny spend', ({ assert }) => {
    const row = ['4.73', '0.5682', '12.3456', '0.05'].map(formatUsd)
    assert.deepEqual(row, ['$4.73', '$0.57', '$12.35', '$0.05'])
    for (const figure of row) assert.match(figure, /\.\d\d$/)
  })

  test('the digit rule', ({ assert }) => {
    assert.deepEqual(moneyDigits('total', 4.73), { minimumFractionDigits: 2, maximumFractionDigits: 2 })
    assert.deepEqual(moneyDigits('total', 0.5682), { minimumFractionDigits: 2, maximumFractionDigits: 2 })
    assert.deepEqual(moneyDigits('total', 0.0042), { minimumFractionDigits: 2, maximumFractionDigits: 4 })
    assert.deepEqual(moneyDigits('total', 0.00000123), { minimumFractionDigits: 2, maximumFractionDigits: 6 })
    assert.deepEqual(moneyDigits('cost', 4.73), { minimumFractionDigits: 6, maximumFractionDigits: 6 })
  })
})

test.group('Money on the pages: costs, prices and exact amounts', () => {
  test('a request cost has 6 decimals whatever its size, so a column lines up', ({ assert }) => {
    const column = ['0.0022', '0.5682', '4.73', '0.00009255', '0', '10'].map(formatCost)
    assert.deepEqual(column, ['$0.002200', '$0.568200', '$4.730000', '$0.000093', '$0.000000', '$10.000000'])
    assert.equal(formatCost('-0.0022'), '-$0.002200')
    assert.equal(formatCost('0.0000001'), '<$0.000001', 'a tiny cost never reads as nothing')
  })

  test('prices and exact amounts as stored: trailing zeros trimmed, at least cents', ({ assert }) => {
    assert.equal(formatUsdExact('0.075000'), '$0.075')
    assert.equal(formatUsdExact('2.500000'), '$2.50')
    assert.equal(formatUsdExact('15'), '$15.00')
    assert.equal(formatUsdExact('0.000092550000'), '$0.00009255')
    assert.equal(formatUsdExact('0.000000000001'), '$0.000000000001')
    assert.equal(formatUsdExact('-0.000022000000'), '-$0.000022')
    assert.equal(formatUsdExact('123456789.123456789012'), '$123,456,789.123456789012', 'a decimal string is not rounded through a float')
    assert.equal(formatUsdExact('0'), '$0.00')
  })

  test('1M in + 1M out is summed exactly', ({ assert }) => {
    assert.equal(sumUsd('0.1', '0.2'), '0.300000000000')
    assert.equal(formatUsdExact(sumUsd('0.075000', '0.300000')), '$0.375')
    assert.equal(formatUsdExact(sumUsd('2.5', '10')), '$12.50')
  })
})

test.group('Money on the pages: the portal, in its language', () => {
  test('English: the same figures as the panel', ({ assert }) => {
    const l10n = localeFormatters(i18nManager.locale('en'))
    for (const value of ['4.73', '0.5682', '0.0042', '0.000031', '0', '0.0000001', '-0.25', '1234.5']) {
      assert.equal(l10n.money(value), formatUsd(value), value)
      assert.equal(l10n.cost(value), formatCost(value), value)
    }
    assert.equal(l10n.moneyShort('0.5682'), '$0.57', 'the cards\' old name follows the same rule')
    assert.equal(l10n.exact('0.075'), '$0.075')
    assert.equal(l10n.exact('2.5'), '$2.50')
  })

  test('Vietnamese: the same digits, Vietnamese separators', ({ assert }) => {
    const l10n = localeFormatters(i18nManager.locale('vi'))
    assert.match(l10n.money('1234.5'), /^1\.234,50\sUS\$$/)
    assert.match(l10n.money('0.5682'), /^0,57\sUS\$$/)
    assert.match(l10n.money('0.0042'), /^0,0042\sUS\$$/)
    assert.match(l10n.money('0'), /^0,00\sUS\$$/)
    assert.match(l10n.cost('0.0022'), /^0,002200\sUS\$$/)
    assert.match(l10n.exact('0.075'), /^0,075\sUS\$$/)
    assert.match(l10n.money('0.0000001'), /^<0,000001\sUS\$$/)
  })

  test('formatMoney takes any USD formatter', ({ assert }) => {
    const seen: unknown[] = []
    const out = formatMoney('0.5682', 'total', (amount, digits) => {
      seen.push(amount, digits)
      return 'x'
    })
    assert.equal(out, 'x')
    assert.deepEqual(seen, [0.5682, { minimumFractionDigits: 2, maximumFractionDigits: 2 }])
  })
})
