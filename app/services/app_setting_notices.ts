/**
 * Settings the pages keep in memory (read synchronously: the login page's
 * buttons, the CSP header) and reload when `app_settings:<key>` arrives on
 * the gateway's change listener (migration 989's trigger, whoever wrote the
 * row: this instance, another one, psql). A module registers its reload at
 * import; the gateway's listener calls `appSettingChanged`, and after a
 * reconnect (notices may have been missed) `reloadAppSettings`.
 */
type Reload = () => Promise<unknown>

const reloads = new Map<string, Reload>()

export function onAppSettingChange(key: string, reload: Reload) {
  reloads.set(key, reload)
}

/** A notice for one key: its reload, if a module keeps that key (others are not ours). */
export async function appSettingChanged(key: string) {
  await reloads.get(key)?.()
}

/** Every kept setting read again (boot, a reconnect of the listener). */
export async function reloadAppSettings() {
  await Promise.all([...reloads.values()].map((reload) => reload()))
}
