import env from '#start/env'
import { defineConfig } from '@adonisjs/lucid'

/**
 * PostgreSQL only. DATABASE_URL is either given by the operator or pointed
 * at the embedded server by start/runtime.ts.
 */
const dbConfig = defineConfig({
  connection: 'postgres',
  prettyPrintDebugQueries: false,
  connections: {
    postgres: {
      client: 'pg',
      connection: { connectionString: env.get('DATABASE_URL') },
      pool: { min: 0, max: env.get('DB_POOL_MAX') ?? 12 },
      migrations: { naturalSort: true, paths: ['database/migrations'] },
      debug: false,
    },
  },
})

export default dbConfig
