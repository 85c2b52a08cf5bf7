import i18nManager from '@adonisjs/i18n/services/main'
import type { FieldContext, MessagesProviderContact } from '@vinejs/vine/types'

/**
 * Error messages of the admin validators (panel forms and ace commands):
 * field labels and rule messages from resources/lang/<locale>/validator.json,
 * section "admin" ("Base URL must be a full URL…", not "The baseUrl field…"),
 * in the default language like the rest of the panel. Looked up when a
 * validator fails: ace loads the validators before the app (and i18n) boots.
 */
export const adminMessages: MessagesProviderContact = {
  getMessage(defaultMessage: string, rule: string, field: FieldContext, meta?: Record<string, any>) {
    return i18nManager
      .locale(i18nManager.defaultLocale)
      .createMessagesProvider('validator.admin')
      .getMessage(defaultMessage, rule, field, meta)
  },
}
