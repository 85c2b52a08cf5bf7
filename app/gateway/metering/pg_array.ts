/**
 * Postgres array literals (`{1,2,NULL}`, `{"a","b\"c"}`) written by hand:
 * one per column of a metering batch, read straight from its rows.
 *
 * The batch statement takes its rows as typed arrays that `unnest` turns
 * back into rows: Postgres reads them about 6 µs per row cheaper than the
 * same rows as JSON through `json_to_recordset` (docs/benchmarks.md, eighth
 * pass). node-pg can encode JavaScript arrays itself, but goes element by
 * element through its generic value preparation, which cost more on the
 * gateway's main thread than the `JSON.stringify` it would replace; the
 * columns here are typed, so each element is one concatenation.
 */
export type Row = Record<string, unknown>

/**
 * A numeric column. NaN and the infinities are NULL, as JSON.stringify wrote
 * them; a number given as a string (a bigint id as pg returns it) goes
 * quoted, which Postgres reads as the number.
 */
export function numberColumn(rows: readonly Row[], key: string): string {
  let out = '{'
  for (let i = 0; i < rows.length; i++) {
    const value = rows[i][key]
    if (i > 0) out += ','
    if (typeof value === 'number') out += Number.isFinite(value) ? String(value) : 'NULL'
    else if (typeof value === 'string' || typeof value === 'bigint') out += quote(String(value))
    else out += 'NULL'
  }
  return out + '}'
}

export function booleanColumn(rows: readonly Row[], key: string): string {
  let out = '{'
  for (let i = 0; i < rows.length; i++) {
    const value = rows[i][key]
    if (i > 0) out += ','
    out += value === null || value === undefined ? 'NULL' : value ? 't' : 'f'
  }
  return out + '}'
}

/**
 * A column of text-like values (text, uuid, a decimal string for numeric, a
 * timestamp): always double-quoted, `"` and `\` escaped. NUL, which no
 * Postgres text can hold, is dropped rather than failing the row.
 */
export function textColumn(rows: readonly Row[], key: string): string {
  let out = '{'
  for (let i = 0; i < rows.length; i++) {
    const value = rows[i][key] as string | null | undefined
    if (i > 0) out += ','
    out += value === null || value === undefined ? 'NULL' : quote(String(value))
  }
  return out + '}'
}

// eslint-disable-next-line no-control-regex
const NEEDS_CARE = /["\\\u0000]/

function quote(value: string): string {
  if (!NEEDS_CARE.test(value)) return '"' + value + '"'
  // eslint-disable-next-line no-control-regex
  return '"' + value.replace(/\u0000/g, '').replace(/["\\]/g, '\\$&') + '"'
}

export type ColumnEncoder = (rows: readonly Row[], key: string) => string

/** A column of an `unnest` input: its name, its Postgres type and how it is written. */
export interface ArrayColumn {
  name: string
  type: string
  encode: ColumnEncoder
}

/** `unnest($n::type[], ...) AS alias(name, ...)`, parameters numbered from `first`. */
export function unnestOf(columns: readonly ArrayColumn[], alias: string, first: number): string {
  const inputs = columns.map((column, i) => `$${first + i}::${column.type}[]`).join(', ')
  return `unnest(${inputs}) AS ${alias}(${columns.map((column) => column.name).join(', ')})`
}

/** The parameters of `unnestOf`'s statement, one array literal per column. */
export function columnsOf(columns: readonly ArrayColumn[], rows: readonly Row[], into: string[]): void {
  for (const column of columns) into.push(column.encode(rows, column.name))
}
