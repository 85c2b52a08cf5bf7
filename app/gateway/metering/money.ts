/**
 * Exact money arithmetic. Amounts are BigInt pico-USD (1e-12 USD), the scale
 * of the numeric(24,12) columns; prices are USD per 1M tokens with up to six
 * decimals, so tokens x price is an exact integer number of pico-USD.
 */
export const PICO_DECIMALS = 12

/** Parses a decimal string ("2.5", "-0.000001") into an integer scaled by 10^decimals. Extra digits are truncated. */
export function parseDecimal(value: string | number, decimals: number): bigint {
  const text = typeof value === 'number' ? value.toFixed(decimals) : value.trim()
  const match = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(text)
  if (!match || (match[2] === '' && (match[3] ?? '') === '')) {
    throw new Error(`Not a decimal number: ${value}`)
  }
  const [, sign, whole, fraction = ''] = match
  const digits = (whole || '0') + fraction.padEnd(decimals, '0').slice(0, decimals)
  const scaled = BigInt(digits)
  return sign === '-' ? -scaled : scaled
}

/** Formats an integer scaled by 10^decimals as a plain decimal string. */
export function formatDecimal(value: bigint, decimals: number): string {
  const negative = value < 0n
  const digits = (negative ? -value : value).toString().padStart(decimals + 1, '0')
  const whole = digits.slice(0, digits.length - decimals)
  const fraction = digits.slice(digits.length - decimals)
  return `${negative ? '-' : ''}${whole}.${fraction}`
}

export const toPico = (usd: string | number) => parseDecimal(usd, PICO_DECIMALS)
export const fromPico = (pico: bigint) => formatDecimal(pico, PICO_DECIMALS)

/** Price per 1M tokens (decimal string) -> micro-USD per 1M tokens = pico-USD per token. */
export const pricePerTokenPico = (usdPerMillion: string) => parseDecimal(usdPerMillion, 6)

/** A human rounding for display: "$1.234567" */
export function displayUsd(amount: string | bigint, decimals = 6): string {
  const pico = typeof amount === 'bigint' ? amount : toPico(amount)
  const scale = 10n ** BigInt(PICO_DECIMALS - decimals)
  const rounded = (pico >= 0n ? pico + scale / 2n : pico - scale / 2n) / scale
  return formatDecimal(rounded, decimals)
}
