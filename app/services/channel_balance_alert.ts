import env from '#start/env'
import { appUrl } from '#config/app'
import type { Gateway } from '#gateway/gateway'
import type { BalanceObserver } from '#actions/channel_balance'

/**
 * The low-balance alert: a channel balance read below
 * CHANNEL_BALANCE_ALERT_BELOW (in the balance's own currency) sends
 * `channel.low_balance` through the operator's webhook, at most once per
 * channel per ALERT_REPEAT_MINUTES. Undefined when either is not set up.
 */
export function lowBalanceObserver(gateway: Gateway, below = env.get('CHANNEL_BALANCE_ALERT_BELOW')): BalanceObserver | undefined {
  const alerts = gateway.alerts
  if (below === undefined || alerts === null) return undefined
  return (channel, amount, currency) => {
    if (Number(amount) >= below) return
    alerts.notify('channel.low_balance', channel.id, async () => ({
      text: `Channel "${channel.name}" has ${amount} ${currency} left upstream (alert below ${below}): top up its account. ${appUrl}/admin/channels/${channel.id}`,
      data: { channel_id: channel.id, name: channel.name, amount, currency, below },
    }))
  }
}
