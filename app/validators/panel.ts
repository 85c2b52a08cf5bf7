import vine from '@vinejs/vine'
import { adminMessages } from '#validators/admin_messages'

/**
 * Admin panel forms whose shape differs from the ace flags (ids from
 * selects, checkboxes). Compiled once. Plans, channels, prices and keys
 * reuse the validators in ./admin.ts, shared with the ace commands.
 */

const planId = vine.number().withoutDecimals().min(1).max(Number.MAX_SAFE_INTEGER).optional()

export const panelCreateUserValidator = vine.compile(
  vine.object({
    email: vine.string().trim().email({ require_tld: false }).maxLength(254),
    password: vine.string().minLength(8).maxLength(200).optional(),
    role: vine.enum(['admin', 'user'] as const),
    planId,
  })
)

export const panelUpdateUserValidator = vine.compile(
  vine.object({
    role: vine.enum(['admin', 'user'] as const),
    planId,
    disabled: vine.boolean(),
    password: vine.string().minLength(8).maxLength(200).optional(),
  })
)

export const ledgerEntryValidator = vine.compile(
  vine.object({
    kind: vine.enum(['topup', 'adjustment', 'refund'] as const),
    amount: vine
      .string()
      .trim()
      .regex(/^-?\d{1,12}(\.\d{1,12})?$/),
    note: vine.string().trim().maxLength(500).optional(),
    /** The form's per-rendering key (post_ledger_entry.ts): a second post of the same form moves no money */
    idempotency_key: vine.string().trim().maxLength(100).optional(),
  })
)

export const disableChannelValidator = vine.compile(
  vine.object({
    reason: vine.string().trim().maxLength(500).optional(),
  })
)

export const testChannelValidator = vine.compile(
  vine.object({
    model: vine.string().trim().maxLength(200).optional(),
  })
)

for (const validator of [panelCreateUserValidator, panelUpdateUserValidator, ledgerEntryValidator, disableChannelValidator, testChannelValidator]) {
  validator.messagesProvider = adminMessages
}
