import { providerFiles } from '#gateway/provider_files/provider_file_store'
import { loadSsoPanelSettings } from '#services/sso/sso_panel_settings'
import type { StoredModelLimits } from '#gateway/limits/model_limits'
import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import http from 'node:http'
import OpenAI from 'openai'
import { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { createUser } from '#actions/create_user'
import { createPlan, type CreatePlanInput } from '#actions/create_plan'
import { createChannel, type CreateChannelInput } from '#actions/create_channel'
import { createApiKey } from '#actions/issue_api_key'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { setPrice } from '#actions/set_price'
import type { Gateway } from '#gateway/gateway'
import type { MeterEvent } from '#gateway/metering/meter_event'
import { resetRateLimits } from '#gateway/limits/rate_limits'
import { forgetModelBudgets } from '#gateway/limits/model_budgets'
import { randomUUID } from 'node:crypto'

/** Shared test fixtures: a clean database, the mock upstream, seeded principals. */

export async function gateway(): Promise<Gateway> {
  return app.container.make('gateway')
}

export function baseUrl() {
  return `http://${process.env.HOST}:${process.env.PORT}`
}

/**
 * Empties every table (after committing pending metering) and reloads the caches.
 * The audit log too: ids restart, and a test reading an entry by its subject id
 * must not find an earlier file's.
 */
export async function resetDatabase() {
  const gw = await gateway()
  await gw.meter.drain()
  await gw.requestLogs?.drain()
  // Stored responses queued are written (or fail) before their users go; what memory holds of them goes too.
  await gw.responses.flush()
  gw.responses.forgetCached()
  // Provider files' holders remembered (their rows go with their users).
  providerFiles.forgetAll()
  await db.rawQuery(
    'TRUNCATE balance_ledger, monthly_usage, usage_records, request_attempts, api_keys, users, channels, model_prices, model_fallbacks, plans, ' +
      'usage_daily, usage_daily_days, usage_daily_stale, usage_daily_latency, usage_daily_pruned, usage_daily_latency_pruned, usage_pruned_days, ' +
      'usage_daily_end_users, usage_daily_end_users_pruned, ' +
      'audit_log, request_logs, batch_objects, teams, organizations, budgets, mail_outbox, budget_alert_marks, rate_limits RESTART IDENTITY CASCADE'
  )
  // The operator settings the API path obeys: a test that turned the word filter on must not filter the next
  // file's prompts, nor one that listed account-problem phrases disable the next file's channels.
  await db.from('app_settings').whereIn('key', ['sensitive_words', 'account_problem_keywords', 'sso']).delete()
  await gw.catalog.reload()
  // Nor single sign-on set in the panel show its buttons to the next file (the pages' copy is in memory).
  await loadSsoPanelSettings()
  // No batch is left to hold money on anyone.
  await gw.batches.holds.sync()
  await gw.videos.holds.sync()
  // The sequences restart: a new batch (or video) takes the id of one just released, and would not be held,
  gw.batches.holds.forgetReleased()
  gw.videos.holds.forgetReleased()
  // nor a channel inherit an older channel's open circuit or cool-downs,
  await gw.health.reset()
  // nor a key an older key's rate-limit windows (the shared store's table is truncated above: limiter.clear() clears
  // only stores this process used already, and the notice bounds always count there).
  await resetRateLimits()
  // nor its budgets per model,
  forgetModelBudgets()
  // nor the budget alerts an older key or end user was told of.
  gw.budgets.forget()
}

/** Reloads caches after seeding (NOTIFY would do it too, a few ms later). */
export async function refreshCaches() {
  await (await gateway()).catalog.reload()
}

export async function startMock(options: ConstructorParameters<typeof MockUpstream>[0] = {}) {
  const mock = new MockUpstream(options)
  await mock.start()
  return mock
}

let counter = 0

export interface SeededUser {
  userId: number
  email: string
  key: string
  keyId: number
}

/** A user on a plan (created when given), with a key and an optional balance. */
export async function seedUser(
  options: {
    plan?: CreatePlanInput
    balance?: string
    keyModels?: string[]
    email?: string
    key?: { rpm?: number; tpm?: number; maxParallel?: number; spendLimit?: string; spendPeriod?: 'day' | 'week' | 'month'; modelLimits?: StoredModelLimits }
  } = {}
): Promise<SeededUser> {
  counter++
  let planName: string | undefined
  if (options.plan) {
    planName = `${options.plan.name}-${counter}`
    await createPlan({ ...options.plan, name: planName })
  }
  const email = options.email ?? `user${counter}-${Date.now()}@test.local`
  const { user } = await createUser({ email, password: 'password123', plan: planName })
  if (options.balance) await postLedgerEntry({ userRef: email, kind: 'topup', amount: options.balance })
  const { key, apiKey } = await createApiKey({ userRef: email, models: options.keyModels, ...options.key })
  await refreshCaches()
  return { userId: user.id, email, key, keyId: apiKey.id }
}

export async function seedChannel(input: Partial<CreateChannelInput> & { baseUrl: string }) {
  counter++
  const channel = await createChannel({
    name: input.name ?? `channel-${counter}`,
    provider: input.provider ?? 'custom',
    apiKey: input.apiKey ?? 'upstream-secret',
    models: input.models ?? ['*'],
    ...input,
  })
  await refreshCaches()
  return channel
}

export async function seedPrice(model: string, input: string, output: string) {
  await setPrice({ model, input, output })
  await refreshCaches()
}

export function openai(key: string) {
  return new OpenAI({ apiKey: key, baseURL: `${baseUrl()}/v1`, maxRetries: 0 })
}

/** Raw POST to the gateway, for status/shape assertions the SDK would hide. */
export async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${baseUrl()}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

export async function usageRows(userId: number) {
  await (await gateway()).meter.drain()
  return db.from('usage_records').where('user_id', userId).orderBy('id')
}

/** The user's balance, and the sum of the ledger, as decimal strings from Postgres. */
export async function balanceAndLedger(userId: number) {
  await (await gateway()).meter.drain()
  const result = await db.rawQuery(
    `SELECT u.balance::text AS balance, COALESCE(SUM(l.amount), 0)::text AS ledger
       FROM users u LEFT JOIN balance_ledger l ON l.user_id = u.id WHERE u.id = ? GROUP BY u.id`,
    [userId]
  )
  return result.rows[0] as { balance: string; ledger: string }
}

/**
 * Sends a chat completion (or a call to `path`) and hangs up like a client that goes away: after
 * `afterBytes` bytes of the answer, or (0) right after sending the request.
 * Resolves with the bytes received.
 */
export function abortStreamAfter(key: string, body: unknown, afterBytes: number, path = '/v1/chat/completions'): Promise<number> {
  return new Promise((resolve) => {
    const url = new URL(`${baseUrl()}${path}`)
    let received = 0
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' },
      },
      (res) => {
        // 0: abort once the head arrived, before any body byte. (A timer here raced the
        // request itself: on a busy machine the socket closed before the gateway read it.)
        if (afterBytes === 0) req.destroy()
        res.on('data', (chunk) => {
          received += chunk.length
          if (received >= afterBytes) req.destroy()
        })
        res.on('end', () => resolve(received))
        res.on('close', () => resolve(received))
      }
    )
    req.on('error', () => resolve(received))
    req.end(JSON.stringify(body))
  })
}

/** One priced request's accounting ($0.001), as the gateway hands it to the meter. */
export function meterEvent(userId: number, model = 'meter-model'): MeterEvent {
  return {
    requestId: randomUUID(),
    userId,
    apiKeyId: null,
    channelId: null,
    provider: 'custom',
    model,
    requestedModel: null,
    servedModel: model,
    endpoint: 'chat_completions',
    stream: false,
    status: 200,
    errorCode: null,
    usage: { promptTokens: 10, completionTokens: 5, totalTokens: 15, cachedTokens: 0, reasoningTokens: 0, estimated: false },
    costPico: 1_000_000_000n,
    latencyMs: 10,
    ttftMs: null,
    createdAt: new Date(),
    attemptCount: 1,
    attempts: null,
  }
}

/** A multipart body as a client writes it (fields: name, value, optional file name), with its content type. */
export function multipartBody(fields: Array<[string, string | Buffer, string?]>, boundary = '----gatewayTestBoundary7MA4YWxk') {
  const chunks: Buffer[] = []
  for (const [name, value, filename] of fields) {
    const head = filename
      ? `Content-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: application/octet-stream`
      : `Content-Disposition: form-data; name="${name}"`
    chunks.push(Buffer.from(`--${boundary}\r\n${head}\r\n\r\n`), Buffer.from(value), Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` }
}

/** One call to the management API (/api/admin) with a management key: the status and the parsed JSON answer. */
export async function adminApi(method: string, path: string, key: string, body?: unknown) {
  const response = await fetch(`${baseUrl()}/api/admin${path}`, {
    method,
    headers: { 'authorization': `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as any }
}
