import db from '@adonisjs/lucid/services/db'
import Channel from '#models/channel'
import { checkChannelKey, testChannel, testModelFor } from '#actions/test_channel'
import { cliActor, type Actor } from '#actions/audit'
import type { TestSlots } from '#actions/test_slots'

/**
 * "Test all channels" (new-api's button on its channel list, `channel:test
 * --all`): the single channel test for every channel in rotation, and for
 * every channel the gateway disabled itself (a bad key), which goes back
 * into rotation once its test passes, as the single Test does. Channels an
 * admin disabled are left alone. A few at a time (CONCURRENCY), each within
 * PER_CHANNEL_MS, and none started after the run's budget is spent.
 */

export interface ChannelTestRow {
  channelId: number
  name: string
  ok: boolean
  /** The model the test generated with; null when it listed the upstream's models instead */
  model: string | null
  latencyMs: number
  status: number | null
  /** What went wrong (or, when ok, the start of the answer / "upstream listed N models") */
  message: string
  reEnabled: boolean
  /** Not run: the run's time budget was spent before its turn */
  skipped: boolean
}

export interface TestAllOptions {
  /**
   * `generate`: the panel's Test (a minimal generation on the gateway's
   * dispatch path; needs the running gateway). `key`: `channel:test`'s key
   * check (lists the upstream's models; runs from the command line).
   */
  kind: 'generate' | 'key'
  concurrency?: number
  perChannelMs?: number
  budgetMs?: number
  /** Who ran it: named in the audit row of each channel a passing test puts back in rotation */
  actor?: Actor
  /** The channels to test (default: channelsToTest()) */
  channels?: Channel[]
  /** The model every generation test asks for (default: each channel's own test model) */
  model?: string
  /** Places shared with other runs, one taken per upstream call (the run's own concurrency still applies) */
  slots?: TestSlots
  /** Ends the run (a shutdown): tests under way are cut, the others not started (rows marked skipped) */
  signal?: AbortSignal
}

export const TEST_ALL_DEFAULTS = { concurrency: 4, perChannelMs: 20_000, budgetMs: 90_000 }

/** The channels a run tests: in rotation, or taken out by the gateway itself. */
export async function channelsToTest(): Promise<Channel[]> {
  return Channel.query()
    .where((q) => q.where('enabled', true).orWhereNotNull('auto_disabled_at'))
    .orderBy('priority', 'desc')
    .orderBy('id')
}

export async function testAllChannels(options: TestAllOptions): Promise<ChannelTestRow[]> {
  const concurrency = Math.max(1, options.concurrency ?? TEST_ALL_DEFAULTS.concurrency)
  const perChannelMs = options.perChannelMs ?? TEST_ALL_DEFAULTS.perChannelMs
  const budgetMs = options.budgetMs ?? TEST_ALL_DEFAULTS.budgetMs
  const channels = options.channels ?? (await channelsToTest())
  const deadline = Date.now() + budgetMs
  const rows: ChannelTestRow[] = new Array(channels.length)
  let next = 0

  const worker = async () => {
    while (next < channels.length) {
      const index = next++
      const channel = channels[index]
      // The wait for a shared place counts in the run's budget (none came before it: skipped), so the
      // run's answer stays bounded in time however many runs queue for the places.
      const placed = options.slots ? await options.slots.acquire(deadline) : true
      try {
        if (!placed || Date.now() >= deadline || options.signal?.aborted) {
          rows[index] = skippedRow(channel, budgetMs)
          continue
        }
        rows[index] = await testOne(channel, options.kind, perChannelMs, options.actor ?? cliActor(), options.model, options.signal)
      } finally {
        if (placed) options.slots?.release()
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, channels.length) }, worker))
  return rows
}

async function testOne(
  channel: Channel,
  kind: TestAllOptions['kind'],
  perChannelMs: number,
  actor: Actor,
  asked?: string,
  ended?: AbortSignal
): Promise<ChannelTestRow> {
  const base = { channelId: channel.id, name: channel.name, skipped: false }
  const model = kind === 'generate' ? (asked ?? (await modelToTest(channel))) : null
  if (model === null) {
    const check = await checkChannelKey(channel, perChannelMs, actor)
    return { ...base, ok: check.ok, model: null, latencyMs: check.latencyMs, status: check.status, message: check.message, reEnabled: check.reEnabled }
  }
  const limit = new AbortController()
  const timer = setTimeout(() => limit.abort(new Error(`no answer within ${perChannelMs} ms`)), perChannelMs)
  try {
    const result = await testChannel(channel.id, model, ended ? AbortSignal.any([limit.signal, ended]) : limit.signal, actor)
    const message = result.ok ? (result.text ?? '') : (result.error ?? 'failed')
    return { ...base, ok: result.ok, model, latencyMs: result.latencyMs, status: result.status, message, reEnabled: result.reEnabled }
  } catch (error) {
    return { ...base, ok: false, model, latencyMs: 0, status: null, message: (error as Error)?.message ?? String(error), reEnabled: false }
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The model the single Test would use: the mapping's first public name or
 * the first glob without wildcards, else the model the channel served last;
 * null when there is none (the channel is then checked by listing models).
 */
async function modelToTest(channel: Channel): Promise<string | null> {
  const configured = testModelFor({ models: channel.models ?? [], modelMapping: channel.modelMapping ?? {} })
  if (configured) return configured
  const last = await db.from('usage_records').where('channel_id', channel.id).orderBy('created_at', 'desc').select('model').first()
  return last?.model ?? null
}

function skippedRow(channel: Channel, budgetMs: number): ChannelTestRow {
  return {
    channelId: channel.id,
    name: channel.name,
    ok: false,
    model: null,
    latencyMs: 0,
    status: null,
    message: `not tested: the run's ${Math.round(budgetMs / 1000)} s were spent first`,
    reEnabled: false,
    skipped: true,
  }
}
