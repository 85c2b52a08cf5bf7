import vine, { SimpleMessagesProvider } from '@vinejs/vine'
import { adminMessages } from '#validators/admin_messages'
import { BATCH_STATUS_FILTERS } from '#services/batch_statuses'
import { wholeNumberField } from '#validators/whole_number_field'

/**
 * Admin panel forms whose shape differs from the ace flags (ids from
 * selects, checkboxes). Compiled once. Plans, channels, prices and keys
 * reuse the validators in ./admin.ts, shared with the ace commands.
 */

/** Digits only (whole_number_field.ts); the select's "no plan" is null (the body parser), so absent. */
const planId = wholeNumberField().min(1).max(Number.MAX_SAFE_INTEGER).optional()

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

/**
 * The Batches page's query string (owner: an id or an e-mail; status; kind;
 * the keyset cursor). A value it refuses is said above the form, with what
 * was typed, and nothing is listed.
 */
export const batchFiltersValidator = vine.compile(
  vine.object({
    owner: vine.string().trim().maxLength(254).optional(),
    status: vine.enum(BATCH_STATUS_FILTERS).optional(),
    kind: vine.enum(['openai', 'anthropic', 'google'] as const).optional(),
    // Digits only: ?before=0x10 was page 16's cursor. An empty value is dropped by the controller (no cursor).
    before: wholeNumberField().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  })
)
batchFiltersValidator.messagesProvider = new SimpleMessagesProvider({
  'owner.maxLength': 'Owner must be a user id or an e-mail address (at most 254 characters).',
  'status.enum': `Status must be one of: ${BATCH_STATUS_FILTERS.join(', ')}.`,
  'kind.enum': 'Kind must be openai, anthropic or google.',
  'before.number': 'The page cursor (before) must be a batch id.',
  'before.withoutDecimals': 'The page cursor (before) must be a batch id.',
  'before.min': 'The page cursor (before) must be a batch id.',
  'before.max': 'The page cursor (before) must be a batch id.',
  'string': '{{ field }} must be text, given once.',
})
