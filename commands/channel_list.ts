import { AdminCommand } from '#services/admin_command'
import db from '@adonisjs/lucid/services/db'
import { readable, UNREADABLE_KEY_REASON } from '#services/app_key_check'

export default class ChannelList extends AdminCommand {
  static commandName = 'channel:list'
  static description =
    'List channels with their base URL and routing state: enabled, circuit health, cool-down, models cooling down (429/403), last error'

  async execute() {
    const rows = await db.from('channels').orderBy('priority', 'desc').orderBy('id')
    if (rows.length === 0) {
      this.logger.info('No channels yet: npm run ace -- channel:create ...')
      return
    }
    const planNames = new Map((await db.from('plans').select('id', 'name')).map((p) => [Number(p.id), p.name as string]))
    const table = this.ui.table()
    table.head(['id', 'name', 'provider', 'base url', 'models', 'plans', 'prio/weight', 'state', 'models cooling down', 'last error'])
    const now = Date.now()
    for (const row of rows) {
      const state = !readable(row.api_key_encrypted)
        ? `out of rotation: ${UNREADABLE_KEY_REASON}`
        : !row.enabled
        ? `disabled${row.auto_disabled_at ? ' by the gateway' : ''}: ${row.disabled_reason ?? 'by admin'}`
        : row.health === 'open' && row.cooldown_until && new Date(row.cooldown_until) > new Date()
          ? `cooling down until ${new Date(row.cooldown_until).toISOString()}`
          : row.health
      table.row([
        String(row.id),
        row.name,
        row.provider,
        row.base_url,
        (row.models as string[]).join(', ') || '(prefix routing)',
        // Channel groups: the plans it is open to (none named: every plan).
        row.plan_ids?.length ? (row.plan_ids as string[]).map((id) => planNames.get(Number(id)) ?? `#${id}`).join(', ') : 'all',
        `${row.priority}/${row.weight}`,
        state,
        modelCooldowns(row.model_cooldowns, now),
        row.last_error ? `${String(row.last_error).slice(0, 200)} (${new Date(row.last_error_at).toISOString()})` : '',
      ])
    }
    table.render()
  }
}

/** "gpt-x rate_limited until 12:00:03Z (HTTP 429: ...)", one line per model still cooling down. */
function modelCooldowns(stored: Record<string, { until: string; kind: string; reason: string }> | null, now: number) {
  const lines: string[] = []
  for (const [model, c] of Object.entries(stored ?? {})) {
    if (new Date(c.until).getTime() <= now) continue
    lines.push(`${model} ${c.kind} until ${new Date(c.until).toISOString()} (${String(c.reason).slice(0, 60)})`)
  }
  return lines.join('\n')
}
