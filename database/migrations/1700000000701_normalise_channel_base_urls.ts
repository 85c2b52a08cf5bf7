import { BaseSchema } from '@adonisjs/lucid/schema'
import { normaliseBaseUrl } from '#gateway/providers/base_url'
import type { ProviderKind } from '#gateway/types'

/**
 * Stored channel base URLs in their kind's canonical form (as channel:create
 * now stores them): an `anthropic` channel saved as https://api.anthropic.com
 * called .../messages and got 404 on every request; it now calls
 * .../v1/messages. A query string, fragment or credentials were never sent
 * upstream; they are dropped. A URL that does not parse is left for the
 * operator to fix.
 */
export default class extends BaseSchema {
  async up() {
    this.defer(async (db) => {
      const rows = await db.from('channels').select('id', 'provider', 'base_url')
      for (const row of rows) {
        const canonical = canonicalOrNull(row.provider, row.base_url)
        if (canonical && canonical !== row.base_url) {
          await db.from('channels').where('id', row.id).update({ base_url: canonical })
        }
      }
    })
  }

  /** The pasted forms are not kept: the canonical ones address the same endpoints. */
  async down() {}
}

function canonicalOrNull(provider: ProviderKind, baseUrl: string): string | null {
  try {
    const url = new URL(baseUrl)
    url.search = ''
    url.hash = ''
    url.username = ''
    url.password = ''
    return normaliseBaseUrl(provider, url.href)
  } catch {
    return null
  }
}
