import env from '#start/env'
import { appUrl } from '#config/app'
import type { Gateway } from '#gateway/gateway'
import type { BalanceObserver } from '#actions/channel_balance'
import type { BalanceAlertThresholds } from '#services/balance_alert_thresholds'

/**
 * The low-balance alert: a channel balance read below its currency's
 * threshold in CHANNEL_BALANCE_ALERT_BELOW (balance_alert_thresholds.ts: `10`
 * is USD only) sends `channel.low_balance` through the operator's webhook, at
 * most once per channel per ALERT_REPEAT_MINUTES; a balance in a currency
 * without one is not compared. Undefined when either is not set up.
 */
export function lowBalanceObserver(
  gateway: Gateway,
  thresholds: BalanceAlertThresholds | undefined = env.get('CHANNEL_BALANCE_ALERT_BELOW')
): BalanceObserver | undefined {
  const alerts = gateway.alerts
  if (thresholds === undefined || alerts === null) return undefined
  return (channel, amount, currency) => {
    const below = thresholds.get(currency)
    if (below === undefined || Number(amount) >= below) return
    alerts.notify('channel.low_balance', channel.id, async () => ({
      text: `Channel "${channel.name}" has ${amount} ${currency} left upstream (alert below ${below} ${currency}): top up its account. ${appUrl}/admin/channels/${channel.id}`,
      data: { channel_id: channel.id, name: channel.name, amount, currency, below },
    }))
  }
}
