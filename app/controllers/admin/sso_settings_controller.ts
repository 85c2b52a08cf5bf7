import type { HttpContext } from '@adonisjs/core/http'
import env from '#start/env'
import { panelActor } from '#controllers/admin/panel'
import { AdminInputError } from '#actions/admin_input_error'
import { issuerAddress, setGithubSettings, setOidcSettings } from '#actions/set_sso_settings'
import { storedSso, panelSso } from '#services/sso/sso_panel_settings'
import { DEFAULT_OIDC_LABEL, DEFAULT_OIDC_SCOPES, githubFromEnv, githubSettings, oidcFromEnv, oidcSettings } from '#services/sso/sso_settings'
import { callbackUrl } from '#services/sso/sso_flow'
import { probeDiscovery } from '#services/sso/oidc_provider'
import { SsoError } from '#services/sso/sso_error'
import { mailSiteBase } from '#services/mail/site_url'

const SECTION = '/admin/settings#sign-in'

/**
 * Settings > Sign-in: the OIDC provider and the GitHub app set from the
 * panel (set_sso_settings.ts), "Test discovery", and what the page shows.
 * The form fields carry the provider's prefix (oidcIssuer, githubClientId):
 * two forms on one page, each with its own old input and errors.
 */
export default class SsoSettingsController {
  /** POST /admin/settings/sso/oidc */
  async oidc(ctx: HttpContext) {
    const { field, checked } = reader(ctx)
    const saved = await prefixed('oidc', () =>
      setOidcSettings(
        {
          enabled: checked('oidcEnabled'),
          issuer: field('oidcIssuer'),
          clientId: field('oidcClientId'),
          clientSecret: field('oidcClientSecret'),
          clearSecret: checked('oidcClearSecret'),
          scopes: field('oidcScopes'),
          label: field('oidcLabel'),
          linkByEmail: checked('oidcLinkByEmail'),
        },
        panelActor(ctx)
      )
    )
    const overridden = oidcFromEnv() ? ' The environment sets OpenID Connect: these are kept but not used.' : ''
    ctx.session.flash('success', `OpenID Connect sign-in saved: ${saved.enabled ? 'on' : 'off'}.${overridden}`)
    return ctx.response.redirect(SECTION)
  }

  /** POST /admin/settings/sso/github */
  async github(ctx: HttpContext) {
    const { field, checked } = reader(ctx)
    const saved = await prefixed('github', () =>
      setGithubSettings(
        {
          enabled: checked('githubEnabled'),
          clientId: field('githubClientId'),
          clientSecret: field('githubClientSecret'),
          clearSecret: checked('githubClearSecret'),
        },
        panelActor(ctx)
      )
    )
    const overridden = githubFromEnv() ? ' The environment sets GitHub: these are kept but not used.' : ''
    ctx.session.flash('success', `GitHub sign-in saved: ${saved.enabled ? 'on' : 'off'}.${overridden}`)
    return ctx.response.redirect(SECTION)
  }

  /**
   * POST /admin/settings/sso/oidc/discovery: reads the issuer's discovery
   * document now (the issuer typed in the form, else the one in use), as a
   * sign-in would (bounded, no redirects), and says what it found or why not.
   * Nothing is saved.
   */
  async discovery(ctx: HttpContext) {
    const typed = String(ctx.request.input('oidcIssuer') ?? '')
    const issuer = typed.trim() ? await prefixed('oidc', async () => issuerAddress(typed)) : oidcSettings()?.issuer
    if (!issuer) {
      ctx.session.flash('error', 'Test discovery: no issuer given.')
      return ctx.response.redirect(SECTION)
    }
    try {
      const found = await probeDiscovery(issuer)
      ctx.session.flash(
        'success',
        `Discovery at ${issuer} works: authorization ${found.authorizationEndpoint}, token ${found.tokenEndpoint}, keys ${found.jwksUri}` +
          `${found.userinfoEndpoint ? `, userinfo ${found.userinfoEndpoint}` : ', no userinfo endpoint'}; the client secret goes ${found.secretInBody ? 'in the request body' : 'as HTTP Basic'}.`
      )
    } catch (error) {
      const why = error instanceof SsoError ? error.detail : 'unexpected error'
      ctx.session.flash('error', `Discovery at ${issuer} failed: ${why.slice(0, 400)}`)
    }
    return ctx.response.redirect(SECTION)
  }
}

function reader(ctx: HttpContext) {
  return {
    field: (name: string) => String(ctx.request.input(name) ?? ''),
    checked: (name: string) => [ctx.request.input(name) ?? []].flat().includes('1'),
  }
}

/** The action names its fields plainly (issuer, clientId): the form's carry the provider's prefix. */
async function prefixed<T>(prefix: 'oidc' | 'github', run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (error) {
    if (error instanceof AdminInputError && error.field) error.field = prefix + error.field[0].toUpperCase() + error.field.slice(1)
    throw error
  }
}

/**
 * What Settings > Sign-in shows: per provider, the environment's values
 * (read-only, secrets as "set") when it names the provider, else the
 * panel's (secrets as "set"), whether it is on now, and the callback URL to
 * register at the provider. Never a secret.
 */
export async function ssoSection(request: HttpContext['request']) {
  const stored = await storedSso()
  const inUse = { oidc: oidcSettings(), github: githubSettings() }
  return {
    oidc: {
      env: oidcFromEnv()
        ? {
            issuer: env.get('OIDC_ISSUER')?.trim() || null,
            clientId: env.get('OIDC_CLIENT_ID')?.trim() || null,
            secretSet: !!env.get('OIDC_CLIENT_SECRET'),
            scopes: env.get('OIDC_SCOPES')?.trim() || DEFAULT_OIDC_SCOPES,
            label: env.get('OIDC_BUTTON_LABEL')?.trim() || DEFAULT_OIDC_LABEL,
            linkByEmail: env.get('OIDC_LINK_BY_EMAIL') === true,
          }
        : null,
      stored: stored.oidc && {
        enabled: stored.oidc.enabled,
        issuer: stored.oidc.issuer,
        clientId: stored.oidc.clientId,
        secretSet: !!stored.oidc.secretEncrypted,
        scopes: stored.oidc.scopes,
        label: stored.oidc.label,
        linkByEmail: stored.oidc.linkByEmail,
      },
      on: !!inUse.oidc,
      callback: await callbackUrl(request, 'oidc'),
      unreadable: panelSso().unreadable.includes('oidc'),
    },
    github: {
      env: githubFromEnv() ? { clientId: env.get('GITHUB_CLIENT_ID')?.trim() || null, secretSet: !!env.get('GITHUB_CLIENT_SECRET') } : null,
      stored: stored.github && { enabled: stored.github.enabled, clientId: stored.github.clientId, secretSet: !!stored.github.secretEncrypted },
      on: !!inUse.github,
      callback: await callbackUrl(request, 'github'),
      unreadable: panelSso().unreadable.includes('github'),
    },
    /** The callback address comes from APP_URL or the site address; else the address this page was reached at (say so) */
    callbackFromRequest: (await mailSiteBase()) === null,
    defaults: { scopes: DEFAULT_OIDC_SCOPES, label: DEFAULT_OIDC_LABEL },
  }
}
