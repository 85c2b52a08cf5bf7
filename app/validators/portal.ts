import vine from '@vinejs/vine'
import { SPEND_PERIODS } from '#gateway/metering/spend_period'
import { ipAllowlistText } from '#validators/ip_allowlist'
import { wholeNumberField } from '#validators/whole_number_field'

/**
 * Forms of the user portal, compiled once. Messages come from resources/lang/<locale>/validator.json.
 * Whole numbers are digits only (whole_number_field.ts): `0x10`, `1e3` or ` 5` are refused, not read
 * as Number() reads them. An empty field never reaches them: a form's is null (the body parser), and
 * the usage filters drop an empty query value (?key= is "any key").
 */

const password = () => vine.string().minLength(8).maxLength(128)

export const registerValidator = vine.compile(
  vine.object({
    email: vine.string().trim().email().maxLength(254),
    password: password().confirmed({ confirmationField: 'password_confirmation' }),
    /** The referral code of the link the visitor came by (unknown codes are ignored) */
    ref: vine.string().trim().maxLength(32).optional(),
  })
)

export const changePasswordValidator = vine.compile(
  vine.object({
    current_password: vine.string().maxLength(128),
    password: password().confirmed({ confirmationField: 'password_confirmation' }),
  })
)

/** The first password of an account made by single sign-on: no current one; the second factor's code when it is on. */
export const setFirstPasswordValidator = vine.compile(
  vine.object({
    password: password().confirmed({ confirmationField: 'password_confirmation' }),
    code: vine.string().trim().maxLength(64).optional(),
  })
)

/** Forgotten password and "send the link again": the address, as registration takes it. */
export const mailAddressValidator = vine.compile(
  vine.object({
    email: vine.string().trim().email().maxLength(254),
  })
)

/** The new password of a reset link: the Security page's rules, without the current password (the link stands for it). */
export const resetPasswordValidator = vine.compile(
  vine.object({
    password: password().confirmed({ confirmationField: 'password_confirmation' }),
  })
)

/** USD amounts: up to 6 decimals, like prices and the ledger. */
const USD = /^\d{1,12}(\.\d{1,6})?$/

export const createKeyValidator = vine.compile(
  vine.object({
    name: vine.string().trim().minLength(1).maxLength(100),
    expires_in_days: wholeNumberField().min(1).max(3650).optional(),
    /** Comma-separated model names or globs, inside the plan */
    models: vine.string().trim().maxLength(2000).optional(),
    spend_limit: vine.string().trim().regex(USD).optional(),
    spend_period: vine.enum(SPEND_PERIODS).optional(),
    /** Addresses and CIDR ranges the key may be used from, comma or space separated; empty = any */
    allowed_ips: ipAllowlistText().optional(),
    /** A team the user is an admin member of (checked by the action); empty: none */
    team: wholeNumberField().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  })
)

/** Editing one of your keys: the create form's fields, with the last day it works instead of days. */
export const updateKeyValidator = vine.compile(
  vine.object({
    name: vine.string().trim().minLength(1).maxLength(100),
    expires_on: vine.string().trim().regex(/^\d{4}-\d{2}-\d{2}$/).optional(),
    models: vine.string().trim().maxLength(2000).optional(),
    spend_limit: vine.string().trim().regex(USD).optional(),
    spend_period: vine.enum(SPEND_PERIODS).optional(),
    allowed_ips: ipAllowlistText().optional(),
    /** The key's team (checked by the action); empty: none; absent (no field: the user may not move it): unchanged */
    team: wholeNumberField().min(1).max(Number.MAX_SAFE_INTEGER).nullable().optional(),
  })
)

export const usageFilterValidator = vine.compile(
  vine.object({
    model: vine.string().trim().maxLength(200).optional(),
    // Ids are bigints; past 2^53 a JavaScript number is no id (and Postgres would refuse 1e20).
    key: wholeNumberField().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    status: vine.enum(['ok', 'error']).optional(),
    // A request tag as the gateway accepts one (app/gateway/metering/request_tags.ts).
    tag: vine.string().trim().regex(/^[A-Za-z0-9_.:/-]{1,64}$/).optional(),
    // An end user as the gateway records one (app/gateway/end_users/end_user_id.ts): no control characters.
    end_user: vine.string().trim().maxLength(128).regex(/^[^\u0000-\u001f\u007f]+$/).optional(),
    // Not after `to`: the page says so beside the date fields (as the admin panel's Usage page does), never an empty list.
    from: vine.date({ formats: ['YYYY-MM-DD'] }).beforeOrSameAs('to').optional(),
    to: vine.date({ formats: ['YYYY-MM-DD'] }).optional(),
    page: wholeNumberField().min(1).max(100000).optional(),
  })
)

/** A prepaid code as typed (read leniently by normaliseRedemptionCode). */
export const redeemCodeValidator = vine.compile(
  vine.object({
    code: vine.string().trim().minLength(1).maxLength(100),
  })
)

/**
 * The low-balance e-mail setting: the checkbox (hidden "0", ticked "1") and
 * the amount as typed (parsed strictly by parseThreshold: `1e3`, signs and
 * NUL are refused there, beside the field).
 */
export const lowBalanceValidator = vine.compile(
  vine.object({
    low_balance_on: vine.any().optional(),
    low_balance: vine.string().trim().maxLength(32).optional(),
  })
)

/**
 * The user's alert webhook: the URL as typed (parsed strictly by
 * parseWebhookUrl: http(s) only, no control character; 10 KB of text is
 * refused here, before it is parsed).
 */
export const alertWebhookValidator = vine.compile(
  vine.object({
    webhook_url: vine.string().maxLength(4096).optional(),
  })
)

/** A card top-up: dollars and cents (the bounds are the operator's, checked by startCheckout). */
export const checkoutValidator = vine.compile(
  vine.object({
    amount: vine.string().trim().regex(/^\d{1,7}(\.\d{1,2})?$/),
  })
)

/**
 * Turning two-factor sign-in off: the password and a current code (or a
 * recovery code). Field names of their own: the page's password form has a
 * current_password too.
 */
export const disableTwoFactorValidator = vine.compile(
  vine.object({
    disable_password: vine.string().maxLength(128),
    disable_code: vine.string().trim().minLength(1).maxLength(64),
  })
)

/**
 * A current code from the authenticator app: confirming the set-up, new
 * recovery codes (its own field name: the Billing page's "code" is a
 * redemption code, and its label says so).
 */
export const appCodeValidator = vine.compile(
  vine.object({
    app_code: vine.string().trim().minLength(1).maxLength(64),
  })
)
