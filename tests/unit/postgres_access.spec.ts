import { test } from '@japa/runner'
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { blockedAncestors, postgresAccessProblem } from '#start/postgres_access'

/** A user that owns nothing here, like the `postgres` user the embedded server runs as. */
const STRANGER = { uid: 54321, gid: 54321 }
const isRoot = process.getuid?.() === 0

test.group('DATA_DIR the postgres user cannot reach (issue 8)', (group) => {
  let root: string
  group.each.setup(() => {
    // mkdtemp makes a 0700 directory, like `mktemp -d`.
    root = mkdtempSync(join(tmpdir(), 'gw-access-'))
    return () => rmSync(root, { recursive: true, force: true })
  })

  test('a 0700 parent is named, with the chmod and the other ways out', ({ assert }) => {
    const dataDir = join(root, 'data')
    const message = postgresAccessProblem({ dataDir }, STRANGER)
    assert.isNotNull(message)
    assert.include(message, `cannot reach its data directory DATA_DIR=${dataDir}`)
    assert.include(message, `  ${root}  (owned by `)
    assert.include(message, 'mode 700)')
    assert.include(message, `chmod o+x ${root}`)
    assert.include(message, 'DATA_DIR=/var/lib/gateway')
    assert.include(message, 'set DATABASE_URL')
    assert.deepEqual(
      blockedAncestors(dataDir, STRANGER).map((b) => b.dir),
      [root]
    )

    chmodSync(root, 0o711)
    assert.isNull(postgresAccessProblem({ dataDir }, STRANGER))
  })

  test('the owner and group bits apply to the user they name', ({ assert }) => {
    const dataDir = join(root, 'data')
    mkdirSync(dataDir)
    chmodSync(root, 0o701)
    assert.isNull(postgresAccessProblem({ dataDir }, STRANGER))
    // The directory's group is the user's group: the group bits decide, and they refuse.
    const groupOfRoot = { uid: STRANGER.uid, gid: process.getgid!() }
    assert.deepEqual(
      blockedAncestors(dataDir, groupOfRoot).map((b) => [b.dir, b.grant]),
      [[root, 'g+x']]
    )
    assert.include(postgresAccessProblem({ dataDir }, groupOfRoot), `chmod g+x ${root}`)
  })

  test('binaries installed where the user cannot enter (a checkout under /root)', ({ assert }) => {
    const installDir = join(root, 'gateway', 'node_modules')
    const dataDir = join(tmpdir(), 'gw-reachable-data')
    const message = postgresAccessProblem({ dataDir, installDir }, STRANGER)
    assert.include(message, `cannot reach its binaries (${installDir})`)
    assert.include(message, 'install the gateway where that user can enter')
  })

  test('a gateway started as root with such a DATA_DIR exits with that message before initdb', ({ assert }) => {
    const dataDir = join(root, 'data')
    const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, NODE_ENV: 'development' }
    delete env.DATABASE_URL
    const result = spawnSync(process.execPath, ['ace', 'channel:list'], { env, encoding: 'utf8', timeout: 60_000 })
    assert.equal(result.status, 1, result.stderr)
    assert.include(result.stderr, `cannot reach its data directory DATA_DIR=${dataDir}`)
    assert.include(result.stderr, `chmod o+x ${root}`)
    assert.notInclude(result.stderr, 'Permission denied')
    assert.isFalse(existsSync(join(dataDir, 'postgres')), 'initdb never ran')
  })
    .skip(!isRoot, 'the embedded Postgres switches to the postgres user only when started as root')
    .timeout(90_000)
})
