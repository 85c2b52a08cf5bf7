import db from '@adonisjs/lucid/services/db'
import { eachAtMost } from '#gateway/each_at_most'
import Channel from '#models/channel'
import { AdminInputError } from '#actions/admin_input_error'
import { findChannel, modelListTargetOf } from '#actions/channel_models'
import { UNREADABLE_KEY_REASON } from '#services/app_key_check'
import { balanceSourceOf, fetchUpstreamBalance, UpstreamBalanceError } from '#services/upstream_balance'
import type { ProviderKind } from '#gateway/types'

/**
 * Channel balances (new-api's "update balance"): what each upstream account
 * has left, asked with the channel's key (services/upstream_balance.ts) and
 * kept in `channel_balances`, one row per channel: the last amount read and
 * when, and the last check's time and error. A failed check keeps the amount
 * (it is shown with its age), so a flaky upstream does not blank the column.
 * The panel's buttons, the management API and `channel:balance` call these.
 */

export interface ChannelBalance {
  channelId: number
  /** Decimal text; null until an upstream first answered */
  amount: string | null
  currency: string | null
  amountAt: Date | null
  checkedAt: Date
  /** What went wrong at the last check; null when it answered */
  error: string | null
}

export interface BalanceCheck extends ChannelBalance {
  name: string
  ok: boolean
  latencyMs: number
}

/** Told about each amount read (the low-balance alert) */
export type BalanceObserver = (channel: { id: number; name: string }, amount: string, currency: string) => void

export const BALANCE_ALL_DEFAULTS = { concurrency: 4, perChannelMs: 20_000, budgetMs: 90_000 }

/** Whether a channel's kind publishes a balance (the others get no button) */
export function hasBalanceSource(provider: string): boolean {
  return balanceSourceOf(provider as ProviderKind) !== null
}

/** Asks one channel's upstream for its balance and keeps it. Refused for kinds without a balance. */
export async function updateChannelBalance(ref: string | number, options: { signal?: AbortSignal; observe?: BalanceObserver } = {}): Promise<BalanceCheck> {
  const channel = await findChannel(ref)
  if (!hasBalanceSource(channel.provider)) {
    throw new AdminInputError(`A ${channel.provider} channel has no balance to ask for: its provider publishes none for an API key`)
  }
  return check(channel, options.signal, options.observe)
}

type UpdateAllOptions = {
  concurrency?: number
  perChannelMs?: number
  budgetMs?: number
  observe?: BalanceObserver
  /** Ends the run (the background timer's stop at shutdown): checks under way are cut and not recorded, none starts */
  signal?: AbortSignal
}
type UpdateAllResult = { checks: BalanceCheck[]; skipped: number }

/** The update-all run under way in this process, if any, and what ends it */
let runningAll: { result: Promise<UpdateAllResult>; stop: AbortController } | null = null

/**
 * Every channel whose kind publishes a balance, enabled or not (an account
 * runs dry whether or not it is in rotation), a few at a time, each within
 * `perChannelMs`, none started after `budgetMs`. A call made while a run is
 * under way gets that run's answer: admins pressing the button at once, a
 * script retrying and the timer ask each upstream once, `concurrency` at a
 * time in all (they made a run each, every account asked once per call).
 */
export function updateAllChannelBalances(options: UpdateAllOptions = {}): Promise<UpdateAllResult> {
  if (!runningAll) {
    const stop = new AbortController()
    const result = runAll(options, stop.signal).finally(() => {
      runningAll = null
    })
    runningAll = { result, stop }
  }
  const run = runningAll
  const { signal } = options
  if (signal) {
    // The timer's stop ends the run it waits on, whoever started it (a shutdown waited up to the run's 110 s).
    const end = () => run.stop.abort()
    if (signal.aborted) end()
    signal.addEventListener('abort', end, { once: true })
    void run.result.finally(() => signal.removeEventListener('abort', end)).catch(() => {})
  }
  return run.result
}

async function runAll(options: UpdateAllOptions, stopped: AbortSignal): Promise<UpdateAllResult> {
  const { concurrency, perChannelMs, budgetMs } = { ...BALANCE_ALL_DEFAULTS, ...options }
  const channels = (await Channel.query().orderBy('priority', 'desc').orderBy('id')).filter((c) => hasBalanceSource(c.provider))
  const deadline = Date.now() + budgetMs
  const checks: Array<BalanceCheck | undefined> = new Array(channels.length)
  await eachAtMost(
    channels,
    concurrency,
    async (channel, index) => {
      checks[index] = await check(channel, AbortSignal.any([stopped, AbortSignal.timeout(perChannelMs)]), options.observe, stopped)
    },
    () => Date.now() < deadline && !stopped.aborted
  )
  const done = checks.filter((c): c is BalanceCheck => c !== undefined)
  return { checks: done, skipped: channels.length - done.length }
}

/** The kept balances, by channel id (a channel never checked has none). */
export async function channelBalances(channelIds?: number[]): Promise<Map<number, ChannelBalance>> {
  const query = db.from('channel_balances').select('*')
  if (channelIds) query.whereIn('channel_id', channelIds)
  const rows = await query
  return new Map(rows.map((row) => [row.channel_id, rowToBalance(row)]))
}

/** When any channel was last checked (the refresh timer skips a run another instance just made) */
export async function lastBalanceCheck(): Promise<Date | null> {
  const row = await db.from('channel_balances').max('checked_at as at').first()
  return row?.at ? new Date(row.at) : null
}

/** One channel's check, kept; undefined when `stopped` cut it (what it would say is no news of the upstream) */
async function check(channel: Channel, signal: AbortSignal | undefined, observe: BalanceObserver | undefined, stopped: AbortSignal): Promise<BalanceCheck | undefined>
async function check(channel: Channel, signal: AbortSignal | undefined, observe: BalanceObserver | undefined): Promise<BalanceCheck>
async function check(channel: Channel, signal: AbortSignal | undefined, observe: BalanceObserver | undefined, stopped?: AbortSignal): Promise<BalanceCheck | undefined> {
  let amount: string | null = null
  let currency: string | null = null
  let error: string | null = null
  let latencyMs = 0
  if (channel.keyUnreadable) {
    error = `Not sent: ${UNREADABLE_KEY_REASON}`
  } else {
    try {
      const balance = await fetchUpstreamBalance(modelListTargetOf(channel), { signal })
      amount = balance.amount
      currency = balance.currency
      latencyMs = balance.latencyMs
    } catch (failure) {
      if (!(failure instanceof UpstreamBalanceError)) throw failure
      if (stopped?.aborted) return undefined
      error = failure.reason.slice(0, 500)
    }
  }
  const saved = await save(channel.id, amount, currency, error)
  if (amount !== null && currency !== null) observe?.({ id: channel.id, name: channel.name }, amount, currency)
  return { ...saved, name: channel.name, ok: error === null, latencyMs }
}

async function save(channelId: number, amount: string | null, currency: string | null, error: string | null): Promise<ChannelBalance> {
  // A failed check keeps the last amount read; a channel deleted meanwhile has nothing to keep (no row).
  const result = await db.rawQuery(
    `INSERT INTO channel_balances (channel_id, amount, currency, amount_at, checked_at, error)
     SELECT ?, ?::numeric, ?, CASE WHEN ?::numeric IS NULL THEN NULL ELSE now() END, now(), ?
     WHERE EXISTS (SELECT 1 FROM channels WHERE id = ?)
     ON CONFLICT (channel_id) DO UPDATE SET
       amount = COALESCE(EXCLUDED.amount, channel_balances.amount),
       currency = COALESCE(EXCLUDED.currency, channel_balances.currency),
       amount_at = COALESCE(EXCLUDED.amount_at, channel_balances.amount_at),
       checked_at = EXCLUDED.checked_at,
       error = EXCLUDED.error
     RETURNING *`,
    [channelId, amount, currency, amount, error, channelId]
  )
  const row = result.rows[0]
  if (!row) return { channelId, amount, currency, amountAt: amount === null ? null : new Date(), checkedAt: new Date(), error }
  return rowToBalance(row)
}

function rowToBalance(row: Record<string, any>): ChannelBalance {
  return {
    channelId: row.channel_id,
    amount: row.amount === null ? null : String(row.amount),
    currency: row.currency,
    amountAt: row.amount_at ? new Date(row.amount_at) : null,
    checkedAt: new Date(row.checked_at),
    error: row.error,
  }
}
