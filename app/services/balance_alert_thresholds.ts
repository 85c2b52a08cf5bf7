/**
 * CHANNEL_BALANCE_ALERT_BELOW read once at boot (start/env.ts): the amount
 * under which a channel balance is low, per currency, since a balance is in
 * its upstream's currency (DeepSeek's is usually CNY) and one number cannot
 * fit USD and CNY at once. `10` is 10 USD (balances in other currencies are
 * not compared); `USD:10,CNY:70` one threshold per currency. A value that is
 * neither fails the boot with a message saying why.
 */
export type BalanceAlertThresholds = ReadonlyMap<string, number>

const AMOUNT = /^\d{1,12}(\.\d{1,6})?$/
const CURRENCY = /^[A-Z]{3}$/

export function parseBalanceAlertThresholds(name: string, value: string): BalanceAlertThresholds {
  const text = value.trim()
  const fail = (why: string) =>
    new Error(`${name} must be an amount in USD (10) or amounts per currency (USD:10,CNY:70); ${why} in "${value.slice(0, 100)}"`)
  if (AMOUNT.test(text)) return new Map([['USD', Number(text)]])
  const thresholds = new Map<string, number>()
  for (const entry of text.split(',')) {
    const [code, amount, extra] = entry.split(':').map((part) => part.trim())
    if (amount === undefined || extra !== undefined) throw fail(`"${entry.trim()}" is not CURRENCY:AMOUNT`)
    const currency = code.toUpperCase()
    if (!CURRENCY.test(currency)) throw fail(`"${code}" is not a 3-letter currency code`)
    if (!AMOUNT.test(amount)) throw fail(`"${amount}" is not an amount (digits, at most 6 decimals)`)
    if (thresholds.has(currency)) throw fail(`${currency} is given twice`)
    thresholds.set(currency, Number(amount))
  }
  return thresholds
}
