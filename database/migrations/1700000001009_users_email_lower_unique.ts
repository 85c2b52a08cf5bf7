import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * One account per e-mail address in any letter case. Registration and the
 * admin's user creation compare `lower(email)` first, but two creations at
 * once (a script's retry, two admins) could both pass that check with
 * `Dup@x.io` and `dup@x.io`: the exact-case unique index let both in. The
 * index on `lower(email)` refuses the second (create_user.ts and
 * register_user.ts answer a `users_email…` violation as "already exists"),
 * and serves those lookups.
 *
 * A database that already holds such a pair cannot take the index: it is
 * then not made (the pair is the operator's to merge; the exact-case index
 * and the checks stay), and a later migration run makes it once the pair is
 * gone only if this one is rolled back and run again. A NOTICE says so.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.raw(`
      DO $$
      BEGIN
        IF EXISTS (SELECT 1 FROM users GROUP BY lower(email) HAVING count(*) > 1) THEN
          RAISE NOTICE 'users: e-mail addresses that differ only in case exist; users_email_lower_unique not created';
        ELSE
          CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower_unique ON users (lower(email));
        END IF;
      END $$`)
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS users_email_lower_unique')
  }
}
