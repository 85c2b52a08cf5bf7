import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { AdminInputError } from '#actions/admin_input_error'

/**
 * Usage log retention by hand (the server does it hourly with
 * USAGE_RETENTION_DAYS): deletes the request rows and attempts of the days
 * before the last N, after making sure those days' totals are rolled up,
 * and sweeps what the timer sweeps (retention_sweeps.ts: rows past their own expiry).
 * Safe beside running gateways: batches of 10,000 rows, and one prune at a
 * time (a second one says so and does nothing).
 */
export default class UsagePrune extends AdminCommand {
  static commandName = 'usage:prune'
  static description = 'Delete usage rows and attempts older than the last N days (totals, monthly counters and the ledger are kept)'

  @flags.number({ description: 'Whole UTC days of rows to keep before today (at least 31; default USAGE_RETENTION_DAYS)' })
  declare keepDays?: number

  @flags.boolean({ description: 'Count what would be deleted; delete nothing' })
  declare dryRun?: boolean

  async execute() {
    // Imported here: ace imports every command file to list them, before booting (the rollup
    // service builds queries when loaded).
    const { pruneUsage } = await import('#actions/prune_usage')
    const { retentionDays } = await import('#services/usage_retention')
    const keepDays = this.keepDays ?? (retentionDays() || undefined)
    if (keepDays === undefined) throw new AdminInputError('Give --keep-days N (or set USAGE_RETENTION_DAYS)')
    const result = await pruneUsage({ keepDays, dryRun: this.dryRun ?? false })
    // Rows past their own expiry (stored Responses, provider files, Realtime client secrets), whatever --keep-days
    // says: the sweeps the server's hourly timer runs, from the same list.
    const { RETENTION_SWEEPS } = await import('#services/retention_sweeps')
    for (const sweep of RETENTION_SWEEPS) {
      const said = await sweep.run({ dryRun: this.dryRun ?? false })
      if (said !== null) this.logger.info(said)
    }
    if (result.skipped) {
      this.logger.warning('Another prune is running (a gateway\'s hourly retention or another usage:prune): nothing done')
      this.exitCode = 1
      return
    }
    const days = result.days.filter((d) => d.rows > 0)
    const span = days.length === 0 ? '' : days.length === 1 ? ` of ${days[0].day}` : ` of ${days[0].day} to ${days[days.length - 1].day} (${days.length} days)`
    const n = (value: number) => value.toLocaleString('en-US')
    const bodies = result.bodies ? `, and ${n(result.bodies)} logged request bodies` : ''
    if (result.dryRun) {
      this.logger.info(`Dry run: would delete ${n(result.rows)} usage rows and ${n(result.attempts)} attempts${span}${bodies}`)
    } else {
      this.logger.success(
        `Deleted ${n(result.rows)} usage rows and ${n(result.attempts)} attempts${span}${bodies}` +
          (result.rolledUp ? `; ${result.rolledUp} day(s) rolled up first` : '')
      )
    }
    this.logger.info(`Oldest day kept: ${result.oldestKept} (${result.keepDays} days); daily totals, monthly counters and the ledger are kept`)
  }
}
