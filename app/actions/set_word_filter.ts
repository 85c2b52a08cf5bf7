import db from '@adonisjs/lucid/services/db'
import { AdminInputError } from '#actions/admin_input_error'
import { writeAudit, type Actor } from '#actions/audit'
import { getSetting, putSetting } from '#services/app_settings'
import { WORD_FILTER_OFF, WORD_FILTER_SETTING, wordFilterSettingsOf, type WordFilterSettings } from '#gateway/content_filter/word_filter'
import { entriesOf, WordListError, WordMatcher } from '#gateway/content_filter/word_matcher'

/**
 * The sensitive-word filter's setting (word_filter.ts), from the Settings
 * page, `words:set` and the management API. The list is compiled here, so a
 * pattern that is not supported, or a set too large for its automaton, is
 * refused when it is saved; the gateways compile the saved list again when
 * the NOTIFY (migration 989) reaches them, and nothing is read per request.
 */
export async function wordFilterSettings(): Promise<WordFilterSettings> {
  return wordFilterSettingsOf(await getSetting<unknown>(WORD_FILTER_SETTING, WORD_FILTER_OFF))
}

/** The fields given change, the rest stay; `words` is a list or the text of one (one entry per line). */
export interface WordFilterInput {
  enabled?: boolean
  words?: string | string[]
  checkCompletions?: boolean
  hideMatches?: boolean
}

export async function setWordFilter(input: WordFilterInput, actor: Actor): Promise<WordFilterSettings> {
  const before = await wordFilterSettings()
  const words = input.words === undefined ? before.words : entriesOf(input.words)
  try {
    WordMatcher.compile(words)
  } catch (error) {
    if (error instanceof WordListError) throw new AdminInputError(`Words: ${error.message}`, 'words')
    throw error
  }
  const after: WordFilterSettings = {
    enabled: input.enabled ?? before.enabled,
    words,
    checkCompletions: input.checkCompletions ?? before.checkCompletions,
    hideMatches: input.hideMatches ?? before.hideMatches,
  }
  if (after.enabled && words.length === 0) throw new AdminInputError('Words: list at least one word to turn the filter on', 'words')
  await db.transaction(async (trx) => {
    await putSetting(WORD_FILTER_SETTING, after, trx)
    await writeAudit(trx, actor, {
      action: 'settings.sensitive_words',
      subjectType: 'settings',
      subjectId: null,
      summary: summaryOf(before, after),
      before: { ...before },
      after: { ...after },
    })
  })
  return after
}

/** The audit line: on or off, what is checked, and which entries came and went. */
function summaryOf(before: WordFilterSettings, after: WordFilterSettings): string {
  const added = after.words.filter((w) => !before.words.includes(w))
  const removed = before.words.filter((w) => !after.words.includes(w))
  const changes = [
    `Sensitive-word filter ${after.enabled ? 'on' : 'off'} (${after.words.length} entries; ${after.checkCompletions ? 'prompts and answers' : 'prompts'}${after.hideMatches ? '; matches hidden' : ''})`,
  ]
  if (added.length) changes.push(`added ${added.length}: ${added.slice(0, 5).join(', ')}${added.length > 5 ? '…' : ''}`)
  if (removed.length) changes.push(`removed ${removed.length}: ${removed.slice(0, 5).join(', ')}${removed.length > 5 ? '…' : ''}`)
  return changes.join('; ').slice(0, 500)
}
