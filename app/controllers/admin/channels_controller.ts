import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import { DateTime } from 'luxon'
import Channel from '#models/channel'
import { createChannel } from '#actions/create_channel'
import { setChannelEnabled, updateChannel } from '#actions/update_channel'
import { testChannel, testModelFor } from '#actions/test_channel'
import { testAllChannels } from '#actions/test_all_channels'
import { channelBalances, hasBalanceSource, updateAllChannelBalances, updateChannelBalance } from '#actions/channel_balance'
import { lowBalanceObserver } from '#services/channel_balance_alert'
import { FLASH_KEY as TEST_ALL_FLASH, packTestAll, unpackTestAll } from '#services/test_all_flash'
import { fetchChannelModels, previewUpstreamModels, setChannelModels } from '#actions/channel_models'
import { AdminInputError } from '#actions/admin_input_error'
import { CHANNEL_TIMEOUT_LIMITS, channelModelsValidator, parsePairs, validateChannel } from '#validators/admin'
import { disableChannelValidator, testChannelValidator } from '#validators/panel'
import { PROVIDER_KINDS } from '#gateway/types'
import { VENDORS } from '#gateway/providers/vendors'
import { UNREADABLE_KEY_REASON } from '#services/app_key_check'
import { checkbox, idList, listField, optionalNumber, pairsText, panelActor, notFound } from '#controllers/admin/panel'

/**
 * Form fields -> the shared channel validator, which reports every error of
 * the form at once (mapping and headers are "a = b" / "Name: value" lines;
 * a malformed line is one of the errors).
 */
async function validateChannelForm(request: HttpContext['request'], extra: { enabled?: boolean } = {}) {
  const mapping = parsePairs('modelMapping', request.input('modelMapping'), '=')
  const headers = parsePairs('extraHeaders', request.input('extraHeaders'), ':')
  const data = {
    name: request.input('name') ?? '',
    provider: request.input('provider') ?? '',
    baseUrl: request.input('baseUrl') ?? '',
    apiKey: request.input('apiKey') || undefined,
    models: listField(request.input('models')),
    modelMapping: mapping.record,
    extraHeaders: headers.record,
    priority: optionalNumber(request.input('priority')),
    weight: optionalNumber(request.input('weight')),
    connectTimeoutMs: optionalNumber(request.input('connectTimeoutMs')),
    firstByteTimeoutMs: optionalNumber(request.input('firstByteTimeoutMs')),
    idleTimeoutMs: optionalNumber(request.input('idleTimeoutMs')),
    totalTimeoutMs: optionalNumber(request.input('totalTimeoutMs')),
    // Channel groups: the ticked plans (none ticked posts nothing: every plan).
    planIds: idList(request.input('planIds')),
    ...extra,
  }
  return validateChannel(data, [...mapping.problems, ...headers.problems])
}

/**
 * Per channel over the last hour: requests it answered (usage_records; a
 * clean single-attempt request writes no attempts row) plus the failed
 * attempts it caused on the way (request_attempts); success rate and p50
 * latency of what it answered.
 */
async function lastHourStats(channelId?: number) {
  const since = db.raw(`now() - interval '1 hour'`)
  const served = db
    .from('usage_records')
    .where('created_at', '>', since)
    .whereNotNull('channel_id')
    .groupBy('channel_id')
    .select('channel_id')
    .select(db.raw('count(*)::int AS answered'))
    .select(db.raw('count(*) FILTER (WHERE status < 400)::int AS ok'))
    .select(db.raw('percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::int AS p50'))
  const failed = db
    .from('request_attempts')
    .where('created_at', '>', since)
    .whereNot('outcome', 'ok')
    .whereNotNull('channel_id')
    .groupBy('channel_id')
    .select('channel_id')
    .select(db.raw('count(*)::int AS failures'))
  if (channelId) {
    served.where('channel_id', channelId)
    failed.where('channel_id', channelId)
  }
  const [servedRows, failedRows] = await Promise.all([served, failed])
  const stats = new Map<number, { attempts: number; ok: number; p50: number | null }>()
  for (const r of servedRows) stats.set(Number(r.channel_id), { attempts: r.answered, ok: r.ok, p50: r.p50 })
  for (const r of failedRows) {
    const s = stats.get(Number(r.channel_id)) ?? { attempts: 0, ok: 0, p50: null }
    s.attempts += r.failures
    stats.set(Number(r.channel_id), s)
  }
  return stats
}

/** The plans a channel form offers (channel groups), by name */
async function planChoices(): Promise<Array<{ id: number; name: string }>> {
  const rows = await db.from('plans').orderBy('name').select('id', 'name')
  return rows.map((row) => ({ id: Number(row.id), name: String(row.name) }))
}

const providerOptions = PROVIDER_KINDS.map((kind) => ({ value: kind, label: kind }))
const defaultBaseUrls = Object.fromEntries(PROVIDER_KINDS.map((kind) => [kind, VENDORS[kind].defaultBaseUrl ?? '']))
/** The base URL field's placeholder per kind (app.js swaps it when the kind changes) */
const baseUrlExamples = Object.fromEntries(
  PROVIDER_KINDS.map((kind) => [kind, VENDORS[kind].defaultBaseUrl ?? VENDORS[kind].baseUrl.example ?? ''])
)

export default class ChannelsController {
  /**
   * Channels with their live state (circuit, cool-down, disabled reason, last error, last-hour success and p50),
   * and right after Test all each channel's result.
   */
  async index({ view, session }: HttpContext) {
    const [channels, stats] = await Promise.all([Channel.query().orderBy('priority', 'desc').orderBy('id'), lastHourStats()])
    const gateway = await app.container.make('gateway')
    const circuits = new Map(channels.map((c) => [c.id, gateway.health.stateOf(c.id)]))
    const fallbacks = await db.from('model_fallbacks').orderBy('model_pattern').select('model_pattern', 'fallbacks')
    const testAll = unpackTestAll(session.flashMessages.get(TEST_ALL_FLASH))
    // Channel groups: the names of the plans a channel is open to.
    const planNames = new Map((await planChoices()).map((p) => [p.id, p.name]))
    const balances = await channelBalances()
    const withBalance = new Set(channels.filter((c) => hasBalanceSource(c.provider)).map((c) => c.id))
    return view.render('admin/channels/index', { channels, stats, circuits, fallbacks, testAll, planNames, balances, withBalance })
  }

  /**
   * Test all: the single Test for every channel in rotation or disabled by
   * the gateway itself, a few at a time; the results go to the list through
   * the flash (post/redirect/get: a refresh does not test them all again).
   */
  async testAll(ctx: HttpContext) {
    const rows = await testAllChannels({ kind: 'generate', actor: panelActor(ctx) })
    ctx.session.flash(TEST_ALL_FLASH, packTestAll(rows))
    return ctx.response.redirect('/admin/channels')
  }

  /** Update balance: asks the channel's upstream what its account has left (actions/channel_balance.ts). */
  async updateBalance(ctx: HttpContext) {
    const channel = await Channel.find(Number(ctx.params.id))
    if (!channel) return notFound(ctx)
    const check = await updateChannelBalance(channel.id, { observe: lowBalanceObserver(await app.container.make('gateway')) })
    if (check.ok) ctx.session.flash('success', `Channel ${channel.name}: ${check.amount} ${check.currency} left upstream.`)
    else ctx.session.flash('error', `Channel ${channel.name}: the balance could not be read: ${check.error}`)
    return ctx.response.redirect('/admin/channels')
  }

  /** Update balances: every channel whose provider publishes one, 4 at a time. */
  async updateBalances(ctx: HttpContext) {
    const { checks, skipped } = await updateAllChannelBalances({ observe: lowBalanceObserver(await app.container.make('gateway')) })
    const failed = checks.filter((check) => !check.ok).length
    const summary =
      `Balances asked of ${checks.length} channel${checks.length === 1 ? '' : 's'}: ${checks.length - failed} read, ${failed} failed` +
      (skipped ? `, ${skipped} not reached in time` : '') +
      '.'
    ctx.session.flash(failed || skipped ? 'error' : 'success', summary)
    return ctx.response.redirect('/admin/channels')
  }

  /**
   * The upstream's models for a saved channel, asked with its key: rendered
   * in this POST's answer (thousands of ids do not fit the session cookie),
   * each with a checkbox; the chosen ones are saved by saveModels.
   */
  async fetchModels(ctx: HttpContext) {
    const channel = await Channel.find(Number(ctx.params.id))
    if (!channel) return notFound(ctx)
    const report = await fetchChannelModels(channel.id)
    return ctx.view.render('admin/channels/models', { channel, report })
  }

  /** Adds the chosen ids to the channel's models, or replaces them (one audited update). */
  async saveModels(ctx: HttpContext) {
    const { models, mode } = await ctx.request.validateUsing(channelModelsValidator)
    const { channel, added, removed } = await setChannelModels(Number(ctx.params.id), models, mode ?? 'add', panelActor(ctx))
    const what = mode === 'replace' ? `models replaced (${added.length} added, ${removed.length} removed)` : `${added.length} models added`
    ctx.session.flash('success', `Channel ${channel.name}: ${what}.`)
    return ctx.response.redirect(`/admin/channels/${channel.id}`)
  }

  /**
   * The new-channel form's "Fetch models" (app.js): the kind, base URL, key
   * and headers typed, not saved; JSON for the page's script. An error is
   * `{error}` with a 400, never a redirect the script cannot show.
   */
  async previewModels({ request, response }: HttpContext) {
    try {
      const provider = String(request.input('provider') ?? '')
      if (!PROVIDER_KINDS.includes(provider as (typeof PROVIDER_KINDS)[number])) {
        throw new AdminInputError('Choose a provider kind', 'provider')
      }
      const baseUrl = String(request.input('baseUrl') ?? '').trim()
      if (!baseUrl) throw new AdminInputError('Type the base URL first', 'baseUrl')
      const report = await previewUpstreamModels({
        provider: provider as (typeof PROVIDER_KINDS)[number],
        baseUrl,
        apiKey: String(request.input('apiKey') ?? '').trim() || null,
        extraHeaders: parsePairs('extraHeaders', request.input('extraHeaders'), ':').record,
        models: listField(request.input('models')),
        modelMapping: parsePairs('modelMapping', request.input('modelMapping'), '=').record,
      })
      return response.json({ models: report.models, truncated: report.truncated, latency_ms: report.latencyMs })
    } catch (error) {
      if (error instanceof AdminInputError) return response.status(400).json({ error: error.message, field: error.field ?? null })
      throw error
    }
  }

  async create({ view }: HttpContext) {
    return view.render('admin/channels/form', { channel: null, plans: await planChoices(), providerOptions, defaultBaseUrls, baseUrlExamples, pairsText, timeoutLimits: CHANNEL_TIMEOUT_LIMITS })
  }

  /** Adds a channel. */
  async store(ctx: HttpContext) {
    const input = await validateChannelForm(ctx.request, { enabled: true })
    const channel = await createChannel(input, panelActor(ctx))
    ctx.session.flash('success', `Channel ${channel.name} created. Run a test to check it answers.`)
    return ctx.response.redirect(`/admin/channels/${channel.id}`)
  }

  /** A channel: live state, the Test action, and the edit form. */
  async show(ctx: HttpContext) {
    const { params, view, session } = ctx
    const channel = await Channel.find(Number(params.id))
    if (!channel) return notFound(ctx)
    const stats = (await lastHourStats(channel.id)).get(channel.id) ?? null
    const gateway = await app.container.make('gateway')
    const apiKey = channel.getApiKey()
    // No concrete model in the config (only globs): the model it served last is a good test.
    const lastServed = testModelFor(channel)
      ? null
      : await db.from('usage_records').where('channel_id', channel.id).orderBy('created_at', 'desc').select('model').first()
    return view.render('admin/channels/show', {
      channel,
      stats,
      circuit: gateway.health.stateOf(channel.id),
      modelCooldowns: activeModelCooldowns(channel),
      keyHint: apiKey ? `••••${apiKey.slice(-4)}` : null,
      unreadableKeyReason: UNREADABLE_KEY_REASON,
      testModel: testModelFor(channel) ?? lastServed?.model ?? '',
      result: session.flashMessages.get('testResult') ?? null,
      plans: await planChoices(),
      providerOptions,
      defaultBaseUrls,
      baseUrlExamples,
      pairsText,
      timeoutLimits: CHANNEL_TIMEOUT_LIMITS,
    })
  }

  /** Saves a channel's configuration (the upstream key only when a new one is typed). */
  async update(ctx: HttpContext) {
    const input = await validateChannelForm(ctx.request)
    const channel = await updateChannel(
      Number(ctx.params.id),
      { ...input, clearApiKey: checkbox(ctx.request.input('clearApiKey')) },
      panelActor(ctx)
    )
    ctx.session.flash('success', `Channel ${channel.name} saved.`)
    return ctx.response.redirect(`/admin/channels/${channel.id}`)
  }

  async enable(ctx: HttpContext) {
    const channel = await setChannelEnabled(Number(ctx.params.id), true, null, panelActor(ctx))
    ctx.session.flash('success', `Channel ${channel.name} enabled.`)
    return ctx.response.redirect().back()
  }

  /** Takes a channel out of rotation, with the reason shown on the channels page. */
  async disable(ctx: HttpContext) {
    const { reason } = await ctx.request.validateUsing(disableChannelValidator)
    const channel = await setChannelEnabled(Number(ctx.params.id), false, reason ?? null, panelActor(ctx))
    ctx.session.flash('success', `Channel ${channel.name} disabled.`)
    return ctx.response.redirect().back()
  }

  /** Sends a minimal request through this channel and shows latency and the answer, or the upstream's error. */
  async test(ctx: HttpContext) {
    const { model } = await ctx.request.validateUsing(testChannelValidator)
    const result = await testChannel(Number(ctx.params.id), model, undefined, panelActor(ctx))
    ctx.session.flash('testResult', result)
    return ctx.response.redirect(`/admin/channels/${ctx.params.id}#test`)
  }
}

/** The (channel, model) cool-downs still running, soonest end first (the column keeps expired ones). */
function activeModelCooldowns(channel: Channel) {
  const now = Date.now()
  return Object.entries(channel.modelCooldowns ?? {})
    .map(([model, c]) => ({ model, kind: c.kind, reason: String(c.reason ?? ''), until: DateTime.fromISO(c.until) }))
    .filter((c) => c.until.isValid && c.until.toMillis() > now)
    .sort((a, b) => a.until.toMillis() - b.until.toMillis())
}
