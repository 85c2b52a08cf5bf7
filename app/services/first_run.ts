import { randomBytes } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import env from '#start/env'
import logger from '@adonisjs/core/services/logger'
import User from '#models/user'
import Plan from '#models/plan'
import Channel from '#models/channel'
import { normaliseBaseUrl } from '#gateway/providers/base_url'
import { VENDORS } from '#gateway/providers/vendors'
import { PROVIDER_KINDS } from '#gateway/types'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'

/**
 * First start of a fresh install: a default plan, the first admin (printed
 * once) and a channel for every provider key found in the environment.
 * Does nothing once any user exists.
 *
 * Several instances may start at once on an empty database (replicas behind
 * a balancer): the check and the bootstrap run in one transaction holding a
 * Postgres advisory lock, so one instance does it and the others, waiting on
 * the lock, then find the admin and do nothing (before, the second one failed
 * its boot on the plan's unique name and never got ready).
 */
export async function firstRun() {
  const made = await db.transaction(async (trx) => {
    await trx.rawQuery('SELECT pg_advisory_xact_lock(?)', [FIRST_RUN_LOCK])
    const anyUser = await User.query({ client: trx }).select('id').first()
    if (anyUser) return null
    return bootstrap(trx)
  })
  if (!made) return
  const { email, password, created } = made
  const lines = [
    'First start: created the administrator account',
    `  email:    ${email}`,
    `  password: ${env.get('ADMIN_PASSWORD') ? '(from ADMIN_PASSWORD)' : password}`,
    created.length ? `  channels: ${created.join(', ')}` : '  channels: none (set OPENAI_API_KEY etc. or `npm run ace -- channel:create`)',
    'Create an API key: npm run ace -- key:create --user ' + email,
  ]
  // Printed on stdout on purpose (not only the logger): the operator needs it once.
  console.log(`\n${lines.join('\n')}\n`)
  logger.info({ email, channels: created }, 'first start bootstrap done')
}

/** Advisory lock key of the first start's bootstrap (the migrations take 727274). */
const FIRST_RUN_LOCK = 727275

/** The default plan, the first admin and the channels from the environment, in `trx`. */
async function bootstrap(trx: TransactionClientContract) {
  const plan =
    (await Plan.findBy('name', 'default', { client: trx })) ??
    (await Plan.create(
      {
        name: 'default',
        monthlyInputTokens: null,
        monthlyOutputTokens: null,
        allowedModels: ['*'],
      },
      { client: trx }
    ))

  const email = env.get('ADMIN_EMAIL') || 'admin@localhost'
  const password = env.get('ADMIN_PASSWORD') || randomBytes(12).toString('base64url')
  await User.create({ email, password, role: 'admin', planId: plan.id }, { client: trx })

  const created: string[] = []
  for (const kind of PROVIDER_KINDS) {
    const vendor = VENDORS[kind]
    // Azure has no default: its resource endpoint comes with the key (AZURE_OPENAI_ENDPOINT, as in LiteLLM and the SDKs).
    const baseUrl = vendor.envBaseUrl ? process.env[vendor.envBaseUrl] : vendor.defaultBaseUrl
    if (!vendor.envKey || !baseUrl) continue
    const apiKey = process.env[vendor.envKey]
    if (!apiKey) continue
    let canonical: string
    try {
      canonical = normaliseBaseUrl(kind, baseUrl)
    } catch (error) {
      logger.warn(`first start: no ${kind} channel, ${vendor.envBaseUrl}: ${(error as Error).message}`)
      continue
    }
    const channel = new Channel()
    channel.fill({
      name: kind,
      provider: kind,
      baseUrl: canonical,
      models: [...vendor.defaultModels],
      modelMapping: {},
      extraHeaders: {},
      priority: 0,
      weight: 1,
      enabled: true,
    })
    channel.setApiKey(apiKey)
    channel.useTransaction(trx)
    await channel.save()
    created.push(kind)
  }
  return { email, password, created }
}
