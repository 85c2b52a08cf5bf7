import { randomBytes } from 'node:crypto'
import env from '#start/env'
import logger from '@adonisjs/core/services/logger'
import User from '#models/user'
import Plan from '#models/plan'
import Channel from '#models/channel'
import { normaliseBaseUrl } from '#gateway/providers/base_url'
import { VENDORS } from '#gateway/providers/vendors'
import { PROVIDER_KINDS } from '#gateway/types'

/**
 * First start of a fresh install: a default plan, the first admin (printed
 * once) and a channel for every provider key found in the environment.
 * Does nothing once any user exists.
 */
export async function firstRun() {
  const anyUser = await User.query().select('id').first()
  if (anyUser) return

  const plan =
    (await Plan.findBy('name', 'default')) ??
    (await Plan.create({
      name: 'default',
      monthlyInputTokens: null,
      monthlyOutputTokens: null,
      allowedModels: ['*'],
    }))

  const email = env.get('ADMIN_EMAIL') || 'admin@localhost'
  const password = env.get('ADMIN_PASSWORD') || randomBytes(12).toString('base64url')
  await User.create({ email, password, role: 'admin', planId: plan.id })

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
    await channel.save()
    created.push(kind)
  }

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
