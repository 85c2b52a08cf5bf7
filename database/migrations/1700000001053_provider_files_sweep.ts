import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * provider_files (migration 1045) is swept now (app/actions/prune_provider_files.ts,
 * the hourly retention timer): rows past their expiry are marked deleted,
 * resumable uploads unfinished after a week and deleted rows past the
 * retention are removed; and a user's uploads in progress are counted at
 * each start (at most 100). Partial indexes for each, holding only the rows
 * they look at: the uploads in progress (by owner, then age), the active
 * rows that expire, the deleted ones.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.raw(`CREATE INDEX provider_files_uploading ON provider_files (user_id, created_at) WHERE status = 'uploading'`)
    this.schema.raw(`CREATE INDEX provider_files_expiring ON provider_files (expires_at) WHERE status = 'active' AND expires_at IS NOT NULL`)
    this.schema.raw(`CREATE INDEX provider_files_deleted ON provider_files (deleted_at) WHERE status = 'deleted'`)
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS provider_files_deleted')
    this.schema.raw('DROP INDEX IF EXISTS provider_files_expiring')
    this.schema.raw('DROP INDEX IF EXISTS provider_files_uploading')
  }
}
