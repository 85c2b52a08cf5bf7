import { pruneStoredResponses } from '#actions/prune_stored_responses'
import { pruneProviderFiles } from '#actions/prune_provider_files'
import { pruneRealtimeClientSecrets } from '#actions/prune_realtime_client_secrets'

/**
 * A sweep of rows past their own expiry, run beside the usage prune
 * whatever USAGE_RETENTION_DAYS says: by the server's hourly timer
 * (usage_retention_timer.ts) and by `usage:prune`, from this one list so
 * that neither misses one the other runs.
 */
export interface RetentionSweep {
  /** What it sweeps, for the log line of a failure */
  name: string
  /** Runs it (`dryRun`: counts only; `now`: tests) and says what went (or would), null when nothing */
  run(options?: { dryRun?: boolean; now?: Date }): Promise<string | null>
}

const verb = (dryRun: boolean | undefined, done: string) => (dryRun ? `would be ${done}` : done)

export const storedResponsesSweep: RetentionSweep = {
  name: 'stored responses retention',
  async run(options = {}) {
    const deleted = await pruneStoredResponses(options)
    return deleted > 0 ? `stored responses retention: ${deleted} expired responses ${verb(options.dryRun, 'deleted')}` : null
  },
}

/** Provider files: expired ones marked deleted, unfinished uploads after a week, deleted rows after the retention. */
export const providerFilesSweep: RetentionSweep = {
  name: 'provider files sweep',
  async run(options = {}) {
    const { expired, abandoned, deleted } = await pruneProviderFiles(options)
    if (expired + abandoned + deleted === 0) return null
    return options.dryRun
      ? `provider files: would mark ${expired} expired deleted, remove ${abandoned} unfinished uploads and ${deleted} deleted rows`
      : `provider files: ${expired} expired marked deleted, ${abandoned} unfinished uploads and ${deleted} deleted rows removed`
  },
}

/** Realtime client secrets past their expiry (a minting deletes none: it stays one insert). */
export const clientSecretsSweep: RetentionSweep = {
  name: 'realtime client secrets sweep',
  async run(options = {}) {
    const deleted = await pruneRealtimeClientSecrets(options)
    return deleted > 0 ? `realtime client secrets: ${deleted} expired ${verb(options.dryRun, 'deleted')}` : null
  },
}

export const RETENTION_SWEEPS: readonly RetentionSweep[] = [storedResponsesSweep, providerFilesSweep, clientSecretsSweep]
