import vine from '@vinejs/vine'
import { SPEND_PERIODS } from '#gateway/metering/spend_period'
import { ORGANIZATION_ROLES } from '#validators/organization'

/**
 * The portal's Organizations forms (an org_admin's), compiled once; messages
 * from resources/lang/<locale>/validator.json. Field names differ between the
 * page's forms (the add-member form's `new_role`, a member row's `role`, the
 * team form's `team_*`): an error goes beside the field of the form posted.
 */

/** Adding a member: an e-mail of an existing account and a LiteLLM role. */
export const addOrganizationMemberValidator = vine.compile(
  vine.object({
    email: vine.string().trim().email().maxLength(254),
    new_role: vine.enum(ORGANIZATION_ROLES),
  })
)

/** A member's row: their new role. */
export const organizationMemberRoleValidator = vine.compile(
  vine.object({
    role: vine.enum(ORGANIZATION_ROLES),
  })
)

/** No control characters (as a team's alias: teamSettingsValidator). */
const PRINTABLE = /^[^\u0000-\u001f\u007f]+$/

/** A team in the organization: a name and an optional budget (USD, as a team's: 6 decimals) per period. */
export const organizationTeamValidator = vine.compile(
  vine.object({
    team_name: vine.string().trim().minLength(1).maxLength(100).regex(PRINTABLE),
    team_budget: vine.string().trim().regex(/^\d{1,12}(\.\d{1,6})?$/).optional(),
    team_period: vine.enum(SPEND_PERIODS).optional(),
  })
)
