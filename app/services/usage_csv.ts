import type { ServerResponse } from 'node:http'
import { once } from 'node:events'
import db from '@adonisjs/lucid/services/db'
import logger from '@adonisjs/core/services/logger'
import { applyFilters, type UsageFilters } from '#services/usage_query'

const BATCH = 5000
/**
 * The first batch is small and each next one 4x larger, up to BATCH: the
 * first row goes out after ~100 matching rows are read, not 5,000 (a sparse
 * filter, `model=gpt-4o&status=error` over 30 days at 1M rows, read ~550k
 * rows backwards on the primary key before its first byte of data: 555 ms;
 * an unfiltered export rendered 5,000 rows first: 200 ms). Three more
 * statements in a long export, each resuming where the last stopped.
 */
const FIRST_BATCH = 100

/** The size of the export's next keyset batch after one of `previous` rows (null: the first). */
export function nextBatchSize(previous: number | null): number {
  return previous === null ? FIRST_BATCH : Math.min(BATCH, previous * 4)
}

const COLUMNS = [
  'id', 'created_at', 'request_id', 'user_email', 'api_key_id', 'key_name', 'channel', 'provider', 'model', 'served_model',
  'endpoint', 'stream', 'status', 'error_code', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'cache_write_tokens',
  'reasoning_tokens', 'images', 'audio_seconds', 'video_seconds', 'characters', 'estimated', 'cost_usd', 'latency_ms', 'ttft_ms', 'attempts', 'requested_model',
  'cache_hit', 'tags', 'end_user',
] as const

/**
 * One CSV cell. Text a spreadsheet would run as a formula (a key named
 * `=HYPERLINK(...)`, a model `@SUM(...)`) gets a leading apostrophe, so
 * Excel or Sheets shows it as text; numbers, negative amounts included,
 * stay numbers.
 */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return ''
  let text = value instanceof Date ? value.toISOString() : String(value)
  if (/^[=+\-@\t\r]/.test(text) && !/^-?\d+(\.\d+)?$/.test(text)) text = `'${text}`
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

/** A row's tags in one cell, comma-separated (no tag holds a comma); empty when untagged. */
export function tagsCell(tags: string[] | null): string | null {
  return tags === null || tags === undefined ? null : tags.join(',')
}

/**
 * Writes the filtered usage rows to the raw response as CSV, newest first,
 * in keyset batches of 100, 400, 1,600, then 5,000 (nextBatchSize): memory stays flat whatever the row count, and
 * a slow client pauses the reads (drain) instead of growing a buffer. A
 * client that hangs up stops the export. A read that fails once the header
 * is out cuts the download short (the error is logged): the status line is
 * gone, and leaving the response open would hang the client.
 */
export async function streamUsageCsv(res: ServerResponse, filters: UsageFilters, userId: number | null, filename: string) {
  try {
    await writeUsageCsv(res, filters, userId, filename)
  } catch (error) {
    if (!res.headersSent) throw error
    logger.error({ err: error }, 'usage export: a read failed mid-download')
    res.destroy()
  }
}

async function writeUsageCsv(res: ServerResponse, filters: UsageFilters, userId: number | null, filename: string) {
  res.writeHead(200, {
    'content-type': 'text/csv; charset=utf-8',
    'content-disposition': `attachment; filename="${filename}"`,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  })
  let closed = false
  res.on('close', () => (closed = true))
  res.write(COLUMNS.join(',') + '\n')
  let before: number | null = null
  let size: number | null = null
  while (!closed) {
    size = nextBatchSize(size)
    const query = applyFilters(
      db
        .from('usage_records as u')
        .leftJoin('users', 'users.id', 'u.user_id')
        .leftJoin('channels', 'channels.id', 'u.channel_id')
        .leftJoin('api_keys', 'api_keys.id', 'u.api_key_id')
        .select('u.*', 'users.email as user_email', 'channels.name as channel_name', 'api_keys.name as key_name')
        .orderBy('u.id', 'desc')
        .limit(size),
      filters,
      userId
    )
    if (before !== null) query.where('u.id', '<', before)
    const rows = await query
    if (rows.length === 0) break
    let chunk = ''
    for (const r of rows) {
      chunk +=
        [
          r.id, r.created_at, r.request_id, r.user_email, r.api_key_id, r.key_name, r.channel_name, r.provider, r.model,
          r.served_model, r.endpoint, r.stream, r.status, r.error_code, r.prompt_tokens, r.completion_tokens, r.cached_tokens,
          r.cache_write_tokens, r.reasoning_tokens, r.images, r.audio_seconds, r.video_seconds, r.characters, r.estimated, r.cost, r.latency_ms, r.ttft_ms, r.attempts,
          r.requested_model, r.cache_hit, tagsCell(r.tags), r.end_user,
        ]
          .map(csvCell)
          .join(',') + '\n'
    }
    before = Number(rows[rows.length - 1].id)
    if (!res.write(chunk) && !closed) await Promise.race([once(res, 'drain'), once(res, 'close')])
    if (rows.length < size) break
  }
  if (!closed) res.end()
}
