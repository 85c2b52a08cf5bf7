import env from '#start/env'
import { defineConfig, stores } from '@adonisjs/limiter'

/**
 * Rate-limit counters. `memory` (default) is exact for one instance; with
 * several instances behind a balancer set LIMITER_STORE=database so they
 * share counters in Postgres (table rate_limits) and limits do not multiply
 * by the number of instances.
 */
const limiterConfig = defineConfig({
  default: env.get('LIMITER_STORE') ?? 'memory',
  stores: {
    memory: stores.memory({}),
    database: stores.database({ tableName: 'rate_limits', connectionName: 'postgres', clearExpiredByTimeout: true }),
  },
})

export default limiterConfig

declare module '@adonisjs/limiter/types' {
  export interface LimitersList extends InferLimiters<typeof limiterConfig> {}
}
