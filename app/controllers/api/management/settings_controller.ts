import type { HttpContext } from '@adonisjs/core/http'
import { AdminInputError } from '#actions/admin_input_error'
import { setWordFilter, wordFilterSettings, type WordFilterInput } from '#actions/set_word_filter'
import type { WordFilterSettings } from '#gateway/content_filter/word_filter'
import { apiActor, managed } from '#services/management_api'
import { accountProblemKeywords, setAccountProblemKeywords } from '#actions/set_account_problem_keywords'

/**
 * Operator settings over the management API: the sensitive-word filter
 * (the Settings page's section, `words:set`) and the phrases that disable a
 * channel (account_problems.ts), the same actions, audited with source `api`.
 */
export default class ManagementSettingsController {
  /** GET /api/admin/settings/sensitive-words */
  async sensitiveWords() {
    return wordFilterJson(await wordFilterSettings())
  }

  /**
   * PATCH /api/admin/settings/sensitive-words: {enabled?, words?, check?,
   * hide_matches?}; the fields given change. `words`: a list of entries (or
   * one string, one entry per line); `check`: `prompt` or
   * `prompt_and_completion` (answers too, streamed ones as they stream). A
   * list that does not compile is a 400 `invalid_field` naming `words` and
   * the entry.
   */
  async updateSensitiveWords(ctx: HttpContext) {
    return managed(async () => {
      const body = ctx.request.body()
      const input: WordFilterInput = {}
      if (body.enabled !== undefined) input.enabled = flag(body.enabled, 'enabled')
      if (body.hide_matches !== undefined) input.hideMatches = flag(body.hide_matches, 'hide_matches')
      if (body.check !== undefined) {
        if (body.check !== 'prompt' && body.check !== 'prompt_and_completion') throw new AdminInputError('check: prompt or prompt_and_completion', 'check')
        input.checkCompletions = body.check === 'prompt_and_completion'
      }
      if (body.words !== undefined) {
        const words = body.words
        if (typeof words !== 'string' && !(Array.isArray(words) && words.every((w) => typeof w === 'string'))) {
          throw new AdminInputError('words: a list of strings, or one string with an entry per line', 'words')
        }
        input.words = words
      }
      return wordFilterJson(await setWordFilter(input, apiActor(ctx)))
    })
  }

  /** GET /api/admin/settings/account-keywords */
  async accountKeywords() {
    return { object: 'account_keywords', keywords: await accountProblemKeywords() }
  }

  /**
   * PATCH /api/admin/settings/account-keywords: {keywords}: a list of phrases
   * (or one string, a phrase per line) replacing the list; [] clears it.
   */
  async updateAccountKeywords(ctx: HttpContext) {
    return managed(async () => {
      const keywords = ctx.request.body().keywords
      if (typeof keywords !== 'string' && !(Array.isArray(keywords) && keywords.every((k) => typeof k === 'string'))) {
        throw new AdminInputError('keywords: a list of strings, or one string with a phrase per line', 'keywords')
      }
      return { object: 'account_keywords', keywords: await setAccountProblemKeywords(keywords, apiActor(ctx)) }
    })
  }
}

function flag(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw new AdminInputError(`${field}: true or false`, field)
  return value
}

function wordFilterJson(settings: WordFilterSettings) {
  return {
    object: 'sensitive_words',
    enabled: settings.enabled,
    words: settings.words,
    check: settings.checkCompletions ? 'prompt_and_completion' : 'prompt',
    hide_matches: settings.hideMatches,
  }
}
