import { BaseCommand } from '@adonisjs/core/ace'
import type { CommandOptions } from '@adonisjs/core/types/ace'
import { errors } from '@vinejs/vine'
import { AdminInputError } from '#actions/admin_input_error'
import { signedWholeNumber } from '#gateway/http/whole_number'

/**
 * Base of the scriptable admin commands: boots the app (database), and turns
 * validation and input errors into one clear line on stderr with exit code 1.
 */
export abstract class AdminCommand extends BaseCommand {
  static options: CommandOptions = { startApp: true }

  /** The command's work; throw AdminInputError or a VineJS error to refuse input. */
  abstract execute(): Promise<void>

  /** Validator fields whose flag is not their kebab-case name (allowedIps -> --ips), for the error line. */
  protected flagNames: Record<string, string> = {}

  async run() {
    try {
      await this.execute()
    } catch (error) {
      if (error instanceof errors.E_VALIDATION_ERROR) {
        for (const m of error.messages as Array<{ field: string; message: string }>) {
          const field = m.field.replace(/\.\d+$/, '')
          this.logger.error(`--${this.flagNames[field] ?? kebab(field)}: ${m.message}`)
        }
      } else if (error instanceof AdminInputError) {
        this.logger.error(error.message)
      } else {
        throw error
      }
      this.exitCode = 1
    }
  }
}

function kebab(field: string) {
  return field.replace(/\.\d+$/, '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
}

/** "a,b , c" -> ["a","b","c"]; undefined stays undefined */
export function list(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
}

/** A numeric flag given as text: undefined when absent; digits only (NaN for `0x10`, `1e3`: the validator refuses it, naming the flag). */
export function num(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  return signedWholeNumber(value)
}
