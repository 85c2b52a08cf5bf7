/*
| Edge globals for the pages: the text helper and display formatting.
| Registered once at boot; templates call them as plain functions.
*/
import edge from 'edge.js'
import * as format from '#services/format'
import { checkbox } from '#controllers/admin/panel'
import { multiplierText } from '#actions/create_plan'
import { localeTag } from '#services/locale'
import { enabledSsoProviders } from '#services/sso/sso_settings'
import { fieldErrors } from '#services/field_errors'

// `t` is @adonisjs/i18n's Edge global: the request's language where the
// locale middleware runs (portal, docs, status, login), English elsewhere.
edge.global('fmt', format)
/** A language's BCP 47 tag for lang attributes (zh -> zh-CN). */
edge.global('localeTag', localeTag)
/** A posted checkbox's value (hidden "0" then "1": the last wins), as the controllers read it. */
edge.global('checkbox', checkbox)
/** A plan's price multiplier as people write it ("0.8", "1"). */
edge.global('multiplierText', multiplierText)
/** Query string from an object, dropping empty values: links that keep the filters. */
edge.global('qs', (params: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
  const merged = { ...params, ...extra }
  const search = new URLSearchParams()
  for (const [k, v] of Object.entries(merged)) {
    if (v !== undefined && v !== null && v !== '') search.set(k, String(v))
  }
  const text = search.toString()
  return text ? `?${text}` : ''
})
/** A refused form's field errors: beside the fields the page renders, the rest at the top (components/flash.edge). */
edge.global('fieldErrors', fieldErrors)
/** The single sign-on providers that are on, for the login page's buttons (components/sso_buttons.edge). */
edge.global('ssoProviders', enabledSsoProviders)
