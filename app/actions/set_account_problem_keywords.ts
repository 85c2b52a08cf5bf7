import db from '@adonisjs/lucid/services/db'
import { AdminInputError } from '#actions/admin_input_error'
import { writeAudit, type Actor } from '#actions/audit'
import { getSetting, putSetting } from '#services/app_settings'
import { ACCOUNT_KEYWORD_LIMITS, ACCOUNT_KEYWORDS_SETTING, accountKeywordsOf } from '#gateway/upstream/account_problems'

/**
 * The operator's extra phrases that mark an upstream 4xx as an account
 * problem (new-api's AutomaticDisableKeywords): the channel is disabled and
 * the request fails over, as for the built-in list (account_problems.ts).
 * From the Settings page; the gateways reload it on the setting's NOTIFY
 * (migration 989).
 */
export async function accountProblemKeywords(): Promise<string[]> {
  return accountKeywordsOf(await getSetting<unknown>(ACCOUNT_KEYWORDS_SETTING, []))
}

/** One phrase per line (or a list); an empty text clears it. */
export async function setAccountProblemKeywords(input: string | string[], actor: Actor): Promise<string[]> {
  const before = await accountProblemKeywords()
  const after = accountKeywordsOf(input)
  const { entries, minLength, maxLength } = ACCOUNT_KEYWORD_LIMITS
  if (after.length > entries) throw new AdminInputError(`Phrases: at most ${entries}`, 'keywords')
  // A short phrase ("error", "key") would be found in nearly every upstream error: every channel disabled.
  const short = after.find((k) => k.length < minLength)
  if (short !== undefined) throw new AdminInputError(`Phrases: "${short}" is shorter than ${minLength} characters`, 'keywords')
  const long = after.find((k) => k.length > maxLength)
  if (long !== undefined) throw new AdminInputError(`Phrases: "${long.slice(0, 40)}…" is longer than ${maxLength} characters`, 'keywords')
  await db.transaction(async (trx) => {
    await putSetting(ACCOUNT_KEYWORDS_SETTING, after, trx)
    await writeAudit(trx, actor, {
      action: 'settings.account_problem_keywords',
      subjectType: 'settings',
      subjectId: null,
      summary: `Account-problem phrases: ${after.length} (${after.slice(0, 5).join(', ')}${after.length > 5 ? '…' : ''})`.slice(0, 500),
      before: { keywords: before },
      after: { keywords: after },
    })
  })
  return after
}
