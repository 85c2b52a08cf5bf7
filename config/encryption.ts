import env from '#start/env'
import { defineConfig, drivers } from '@adonisjs/core/encryption'

/**
 * Upstream channel keys and 2FA secrets are encrypted with APP_KEY
 * (AES-256-GCM). APP_KEY_PREVIOUS (comma-separated) are keys they may still
 * be saved with after a rotation: read with any of them, written with
 * APP_KEY only (`secrets:reencrypt` moves them over). Signed cookies
 * (sessions) follow the same list.
 */
const previous = (env.get('APP_KEY_PREVIOUS')?.release() ?? '')
  .split(',')
  .map((key) => key.trim())
  .filter(Boolean)

const encryptionConfig = defineConfig({
  default: 'gcm',
  list: {
    gcm: drivers.aes256gcm({ keys: [env.get('APP_KEY'), ...previous], id: 'gcm' }),
  },
})

export default encryptionConfig

declare module '@adonisjs/core/types' {
  export interface EncryptorsList extends InferEncryptors<typeof encryptionConfig> {}
}
