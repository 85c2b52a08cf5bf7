import { flags } from '@adonisjs/core/ace'
import db from '@adonisjs/lucid/services/db'
import hash from '@adonisjs/core/services/hash'
import { DateTime } from 'luxon'
import { AdminCommand } from '#services/admin_command'

/**
 * A demo data set for the admin panel's scale checks (dev only): users on
 * two plans with one key and a top-up each, four channels, prices, and N
 * usage rows spread over the last 30 days in time order (as metering writes
 * them), 3% of them errors, 2% answered by claude-sonnet-4 as gpt-4o's
 * fallback (requested_model), each with the meter's other effects (ledger
 * charge and balance, monthly counters, key spend and last use, team and
 * organization spend: the same SQL); teams and organizations, end users,
 * budgets, payments and audit entries for their pages. Written with
 * set-based SQL in batches; then the daily rollups are filled and the tables
 * analysed.
 *
 *   npm run seed:demo -- --users 1000 --usage-rows 1000000
 */
export default class SeedDemo extends AdminCommand {
  static commandName = 'seed:demo'
  static description = 'Seed demo users, keys, channels, prices and usage rows (dev: panel scale checks)'

  @flags.number({ description: 'Demo users to create', default: 100 })
  declare users: number

  @flags.number({ description: 'Usage rows to create over the last 30 days', default: 100000 })
  declare usageRows: number

  async execute() {
    const started = Date.now()
    const users = Math.max(1, this.users)
    const rows = Math.max(0, this.usageRows)
    const stamp = DateTime.utc().toFormat('yyyyLLddHHmmss')

    await db.rawQuery(
      `INSERT INTO plans (name, allowed_models, rpm, tpm) VALUES ('demo-basic', '["gpt-4o-mini*","deepseek-*"]', 60, 100000), ('demo-pro', '["*"]', 600, 1000000)
       ON CONFLICT (name) DO NOTHING`
    )
    const passwordHash = await hash.use('scrypt').make('demo-password')
    const firstUser = await db.rawQuery(
      `INSERT INTO users (email, password, role, plan_id)
       SELECT 'demo-' || ? || '-' || i || '@demo.local', ?, 'user',
              (SELECT id FROM plans WHERE name = CASE WHEN i % 4 = 0 THEN 'demo-pro' ELSE 'demo-basic' END)
         FROM generate_series(1, ?) i
       RETURNING id`,
      [stamp, passwordHash, users]
    )
    const userIds: number[] = firstUser.rows.map((r: any) => Number(r.id))
    const minUser = Math.min(...userIds)
    const maxUser = Math.max(...userIds)
    await db.rawQuery(
      `INSERT INTO api_keys (user_id, name, key_hash, prefix, last_four)
       SELECT id, 'demo', encode(sha256(('demo-key-' || id || '-' || random())::bytea), 'hex'), 'sk-demo', right(md5(id::text), 4)
         FROM users WHERE id BETWEEN ? AND ?`,
      [minUser, maxUser]
    )
    await db.rawQuery(
      `INSERT INTO balance_ledger (user_id, kind, amount, note, created_at)
       SELECT id, 'topup', 50, 'demo seed', now() - interval '31 days' FROM users WHERE id BETWEEN ? AND ?`,
      [minUser, maxUser]
    )
    // A second key per user, never used (the key lists show more than one key a user).
    await db.rawQuery(
      `INSERT INTO api_keys (user_id, name, key_hash, prefix, last_four)
       SELECT id, 'demo-spare', encode(sha256(('demo-spare-' || id || '-' || random())::bytea), 'hex'), 'sk-demo', right(md5(id::text || 's'), 4)
         FROM users WHERE id BETWEEN ? AND ? ORDER BY id`,
      [minUser, maxUser]
    )
    const { teamIds, teamOrgIds } = await this.seedTeams(stamp, minUser, maxUser)
    const channelNames = ['openai', 'openrouter', 'deepseek', 'anthropic'].map((n) => `demo-${n}-${stamp}`)
    const channels = await db.rawQuery(
      `INSERT INTO channels (name, provider, base_url, models, priority)
       SELECT name, 'custom', 'http://127.0.0.1:9/v1', '["demo-*"]', 0 FROM unnest(?::text[]) name
       RETURNING id`,
      [channelNames]
    )
    const channelIds: number[] = channels.rows.map((r: any) => Number(r.id))
    for (const [model, input, output] of [
      ['gpt-4o-mini', '0.15', '0.6'],
      ['gpt-4o', '2.5', '10'],
      ['deepseek-chat', '0.27', '1.1'],
      ['claude-sonnet-4', '3', '15'],
    ]) {
      await db.rawQuery(
        `INSERT INTO model_prices (model_pattern, input_per_million, output_per_million) VALUES (?, ?, ?)
         ON CONFLICT (model_pattern) DO NOTHING`,
        [model, input, output]
      )
    }

    // Usage rows in time order: row i of N sits at now - 30 days × (1 - i/N). Row i is user
    // (i × 2654435761) mod users's (a function of i mod users); its model and channel turn with
    // i mod users + i / users, so each user calls every model through every channel over the month
    // (with i alone, when users is a multiple of 5 and 4, a user had one model and one channel). Half the rows carry
    // request tags (x-gateway-tags): a team-a..e tag each (10% of rows a team), with env:prod or, on
    // a fifth of them, one of 100 customers' cust:N (N = 0, 10, ... 990; a rarer tag, 0.1% of the rows
    // each). A quarter of the rows name an end user (the request's `user`), one of 200 names
    // end-user-0..199 (0.125% of the rows each, spread over the users). A tenth of the
    // claude-sonnet-4 rows answered as gpt-4o's fallback: one run of `users` rows in ten (so every
    // user who has them has some, bunched in time like an outage). Each batch also
    // writes what the meter writes with a request (METER_EFFECTS: the ledger charge, so balances
    // drop; monthly counters, so plan quotas show use; the key's spend and last use), or the pages
    // would show a key with 500 requests as "Spent $0.00, last used never".
    // Imported here: ace imports every command file to list them, before booting.
    const { METER_EFFECTS, LATE_DAYS_EFFECT, END_USER_SPEND_EFFECT } = await import('#gateway/metering/usage_meter')
    const { TEAM_SPEND_EFFECT, ORG_SPEND_EFFECT } = await import('#gateway/metering/usage_meter')
    const keyRows = await db
      .from('api_keys')
      .whereBetween('user_id', [minUser, maxUser])
      .where('name', 'demo')
      .select('id', 'user_id')
      .orderBy('user_id')
    const keyOffset = Number(keyRows[0]?.id ?? 0) - minUser
    const batch = 100_000
    for (let offset = 0; offset < rows; offset += batch) {
      const count = Math.min(batch, rows - offset)
      await db.rawQuery(
        `WITH ins AS (
         INSERT INTO usage_records (request_id, user_id, api_key_id, channel_id, provider, model, requested_model, served_model,
                                    endpoint, stream, status, error_code, prompt_tokens, completion_tokens, total_tokens,
                                    cached_tokens, estimated, cost, latency_ms, ttft_ms, created_at, tags, end_user,
                                    team_id, organization_id)
         SELECT gen_random_uuid(), u, u + ?, (?::bigint[])[1 + ((i % ? + i / ?) % ?)], 'custom', m,
                CASE WHEN m = 'claude-sonnet-4' AND (i / ?) % 10 = 3 THEN 'gpt-4o' END, m, 'chat.completions', i % 3 = 0,
                CASE WHEN i % 33 = 0 THEN 502 WHEN i % 97 = 0 THEN 429 ELSE 200 END,
                CASE WHEN i % 33 = 0 THEN 'provider_error' WHEN i % 97 = 0 THEN 'rate_limited' ELSE NULL END,
                p, c, p + c, p / 4, false,
                CASE WHEN i % 33 = 0 OR i % 97 = 0 THEN 0 ELSE
                  CASE m WHEN 'gpt-4o-mini' THEN p * 0.00000015 + c * 0.0000006
                         WHEN 'gpt-4o' THEN p * 0.0000025 + c * 0.00001
                         WHEN 'deepseek-chat' THEN p * 0.00000027 + c * 0.0000011
                         ELSE p * 0.000003 + c * 0.000015 END END,
                200 + (i * 7919) % 2800, 80 + (i * 104729) % 600,
                now() - interval '30 days' * (1 - i::float8 / ?),
                CASE WHEN i % 2 = 0 THEN ARRAY['team-' || chr(97 + ((i / 2) % 5)::int),
                  CASE WHEN i % 10 = 0 THEN 'cust:' || (i % 1000) ELSE 'env:prod' END] END,
                CASE WHEN i % 4 = 1 THEN 'end-user-' || ((i / 4) % 200) END,
                CASE WHEN (u - ?) % 5 < 2 THEN (?::bigint[])[1 + ((u - ?) / 5) % ?] END,
                CASE WHEN (u - ?) % 5 < 2 THEN (?::bigint[])[1 + ((u - ?) / 5) % ?] END
           FROM (
             SELECT i, ? + (i * 2654435761) % ? AS u,
                    (ARRAY['gpt-4o-mini','gpt-4o-mini','gpt-4o','deepseek-chat','claude-sonnet-4'])[1 + ((i % ? + i / ?) % 5)] AS m,
                    50 + (i * 48271) % 4000 AS p, 10 + (i * 16807) % 900 AS c
               FROM generate_series(?::bigint, ?::bigint) i
           ) s
         RETURNING id, request_id, user_id, api_key_id, model, provider, prompt_tokens, completion_tokens, cost, created_at, end_user,
                   team_id, organization_id
         ),
         ${METER_EFFECTS}${LATE_DAYS_EFFECT}${END_USER_SPEND_EFFECT}${TEAM_SPEND_EFFECT}${ORG_SPEND_EFFECT}
         SELECT COUNT(*)::int AS inserted FROM ins`,
        [
          keyOffset,
          channelIds,
          users,
          users,
          channelIds.length,
          users,
          rows,
          minUser,
          teamIds,
          minUser,
          teamIds.length,
          minUser,
          teamOrgIds,
          minUser,
          teamIds.length,
          minUser,
          users,
          users,
          users,
          offset + 1,
          offset + count,
        ]
      )
      this.logger.info(`usage rows: ${Math.min(rows, offset + count).toLocaleString()} / ${rows.toLocaleString()}`)
    }
    await this.seedEndUsersPaymentsAudit(minUser, maxUser)
    await db.rawQuery('ANALYZE usage_records')
    await db.rawQuery('ANALYZE users')
    const today = DateTime.utc().startOf('day')
    const monthStart = today.startOf('month')
    // Imported here: usage_rollup builds queries at module scope, which needs a booted app;
    // ace imports every command file to list them, before booting.
    const { ensureRollups } = await import('#services/usage_rollup')
    await ensureRollups(today.minus({ days: 30 }) < monthStart ? today.minus({ days: 30 }) : monthStart, today)
    await db.rawQuery('ANALYZE usage_daily')
    await db.rawQuery('ANALYZE usage_daily_end_users')
    this.logger.success(
      `Seeded ${users} users (password "demo-password"), ${channelIds.length} channels, ${rows.toLocaleString()} usage rows in ${((Date.now() - started) / 1000).toFixed(1)} s`
    )
  }

  /**
   * 10 organizations and 50 teams (40 of them in an organization, 4 each), each team with a
   * budget; two users in five have their demo key in a team (team (offset / 5) % 50: 8 users a
   * team), as members, and those of a team in an organization are its members too. The usage
   * rows of those keys carry the team and its organization, as the meter writes them.
   */
  private async seedTeams(stamp: string, minUser: number, maxUser: number) {
    const orgs = await db.rawQuery(
      `INSERT INTO organizations (alias, max_budget, budget_period)
       SELECT 'demo-org-' || ? || '-' || i, 5000, 'month' FROM generate_series(1, 10) i ORDER BY i RETURNING id`,
      [stamp]
    )
    const orgIds: number[] = orgs.rows.map((r: any) => Number(r.id))
    const teams = await db.rawQuery(
      `INSERT INTO teams (alias, max_budget, budget_period, organization_id)
       SELECT 'demo-team-' || ? || '-' || i, 1000, 'month', CASE WHEN i <= 40 THEN (?::bigint[])[1 + (i - 1) / 4] END
         FROM generate_series(1, 50) i ORDER BY i RETURNING id, organization_id`,
      [stamp, orgIds]
    )
    const teamIds: number[] = teams.rows.map((r: any) => Number(r.id))
    const teamOrgIds: (number | null)[] = teams.rows.map((r: any) => (r.organization_id === null ? null : Number(r.organization_id)))
    // The team of user u (offset o = u - minUser): teams[(o / 5) % 50] when o % 5 < 2.
    await db.rawQuery(
      `WITH m AS (SELECT id AS user_id, (?::bigint[])[1 + ((id - ?) / 5) % ?] AS team_id
                    FROM users WHERE id BETWEEN ? AND ? AND (id - ?) % 5 < 2),
            k AS (UPDATE api_keys a SET team_id = m.team_id FROM m WHERE a.user_id = m.user_id AND a.name = 'demo'),
            tm AS (INSERT INTO team_members (team_id, user_id, role)
                   SELECT team_id, user_id, CASE WHEN (user_id - ?) % 5 = 0 THEN 'admin' ELSE 'user' END FROM m)
       INSERT INTO organization_members (organization_id, user_id)
       SELECT t.organization_id, m.user_id FROM m JOIN teams t ON t.id = m.team_id WHERE t.organization_id IS NOT NULL`,
      [teamIds, minUser, teamIds.length, minUser, maxUser, minUser, minUser]
    )
    return { teamIds, teamOrgIds }
  }

  /**
   * End users registered by their owners (every named end user of one user in eight, their
   * lifetime spend summed from the rows), a few shared budgets, a paid top-up payment behind
   * each demo top-up and an expired checkout per user, and an audit entry per user.
   */
  private async seedEndUsersPaymentsAudit(minUser: number, maxUser: number) {
    await db.rawQuery(
      `INSERT INTO budgets (budget_id, max_budget, budget_period)
       SELECT 'demo-budget-' || i, 100 * i, 'month' FROM generate_series(1, 5) i
       ON CONFLICT (budget_id) DO NOTHING`
    )
    await db.rawQuery(
      `INSERT INTO end_users (user_id, end_user, spent)
       SELECT user_id, end_user, SUM(cost) FROM usage_records
        WHERE user_id BETWEEN ? AND ? AND (user_id - ?) % 8 = 1 AND end_user IS NOT NULL
        GROUP BY user_id, end_user`,
      [minUser, maxUser, minUser]
    )
    await db.rawQuery(
      `INSERT INTO payments (user_id, session_id, amount, amount_cents, status, ledger_entry_id, created_at, updated_at, paid_at)
       SELECT l.user_id, 'cs_demo_paid_' || l.id, 50, 5000, 'paid', l.id, l.created_at, l.created_at, l.created_at
         FROM balance_ledger l WHERE l.user_id BETWEEN ? AND ? AND l.kind = 'topup' AND l.note = 'demo seed'
       UNION ALL
       SELECT id, 'cs_demo_expired_' || id || '_' || md5(random()::text), 20, 2000, 'expired', NULL,
              now() - interval '1 day' * (id % 30), now() - interval '1 day' * (id % 30), NULL
         FROM users WHERE id BETWEEN ? AND ?`,
      [minUser, maxUser, minUser, maxUser]
    )
    await db.rawQuery(
      `INSERT INTO audit_log (actor, source, action, subject_type, subject_id, summary, created_at)
       SELECT 'cli:seed:demo', 'cli', 'user.update', 'user', id, 'demo: plan set', now() - interval '1 minute' * (maxu - id)
         FROM users, (SELECT ?::bigint AS maxu) m WHERE id BETWEEN ? AND ? ORDER BY id`,
      [maxUser, minUser, maxUser]
    )
  }
}
