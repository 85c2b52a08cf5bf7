import vine from '@vinejs/vine'
import { adminMessages } from '#validators/admin_messages'

/** LiteLLM's organization roles (organization_members.role, migration 1024) */
export const ORGANIZATION_ROLES = ['org_admin', 'internal_user', 'internal_user_viewer'] as const
export type OrganizationRole = (typeof ORGANIZATION_ROLES)[number]

/**
 * An organization member: a user (id or e-mail) and a LiteLLM role. An
 * organization's settings are a team's (teamSettingsValidator: alias,
 * budget, period, globs, rpm/tpm, block), checked by the same validator.
 */
export const organizationMemberValidator = vine.compile(
  vine.object({
    user: vine.string().trim().minLength(1).maxLength(254),
    role: vine.enum(ORGANIZATION_ROLES).optional(),
  })
)
organizationMemberValidator.messagesProvider = adminMessages
