import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { channelBalances, updateAllChannelBalances, updateChannelBalance, type ChannelBalance } from '#actions/channel_balance'
import { findChannel } from '#actions/channel_models'
import { AdminInputError } from '#actions/admin_input_error'
import { managed } from '#services/management_api'
import { recordId } from '#services/record_id'
import { lowBalanceObserver } from '#services/channel_balance_alert'

/**
 * Channel balances over the management API (new-api's "update balance"):
 * what each upstream account has left, as its provider says it
 * (actions/channel_balance.ts, the panel's buttons and `channel:balance`).
 */
export default class ManagementChannelBalancesController {
  /** GET /api/admin/channels/:id/balance: the kept balance (nulls before the first check) */
  async show({ params }: HttpContext) {
    return managed(async () => {
      const channel = await findChannel(channelId(params.id))
      const kept = (await channelBalances([channel.id])).get(channel.id)
      return balanceJson(channel.id, kept ?? null)
    })
  }

  /** POST /api/admin/channels/:id/balance: asks the upstream now (200 with `error` when it could not answer) */
  async update({ params }: HttpContext) {
    return managed(async () => {
      const check = await updateChannelBalance(channelId(params.id), { observe: await observer() })
      return { ...balanceJson(check.channelId, check), ok: check.ok, latency_ms: check.latencyMs }
    })
  }

  /** POST /api/admin/channels/balances: every channel whose provider publishes a balance, 4 at a time */
  async updateAll() {
    return managed(async () => {
      const { checks, skipped } = await updateAllChannelBalances({ observe: await observer() })
      return {
        object: 'list',
        data: checks.map((check) => ({ ...balanceJson(check.channelId, check), name: check.name, ok: check.ok, latency_ms: check.latencyMs })),
        skipped,
      }
    })
  }
}

/** Digits only: Number() read "0x10" and "1e3" as the channels 16 and 1000 */
function channelId(value: unknown): number {
  const id = recordId(value)
  if (id === null) throw AdminInputError.notFound(`No channel ${String(value).slice(0, 40)}`)
  return id
}

async function observer() {
  return lowBalanceObserver(await app.container.make('gateway'))
}

function balanceJson(channelId: number, balance: ChannelBalance | null) {
  return {
    object: 'channel_balance',
    channel_id: channelId,
    amount: balance?.amount ?? null,
    currency: balance?.currency ?? null,
    amount_at: balance?.amountAt?.toISOString() ?? null,
    checked_at: balance?.checkedAt.toISOString() ?? null,
    error: balance?.error ?? null,
  }
}
