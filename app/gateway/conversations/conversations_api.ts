import { GatewayError } from '#exceptions/gateway_error'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { parseJsonObject, readRawBody } from '#gateway/http/raw_body'
import { validateShape } from '#gateway/http/envelope'
import { listParams } from '#gateway/responses_store/responses_api'
import type { ConversationRow, ConversationStore, StoredItem } from '#gateway/conversations/conversation_store'
import { addItemsValidator, createConversationValidator, updateConversationValidator } from '#validators/conversations'

/**
 * OpenAI's Conversations API, kept by the gateway per user (whatever channel
 * later answers a turn): `POST/GET/DELETE /v1/conversations[/{id}]`,
 * `POST /v1/conversations/{id}` (metadata), `/items` list and add, `/items/{item_id}`
 * get and delete. Another user's, an expired or an unknown id: OpenAI's 404.
 * Off (404 for every id, 400 to create) when RESPONSES_STORE_DAYS=0.
 */
export async function createConversation(gw: Gateway, call: ApiCall): Promise<Record<string, any>> {
  const store = enabled(gw)
  const body = await readBody(gw, call)
  await validateShape(createConversationValidator, body)
  const metadata = checkedMetadata(body.metadata)
  const row = await store.create(call.principal.user.id, metadata, body.items ?? [])
  return conversationView(row)
}

export async function showConversation(gw: Gateway, call: ApiCall, id: string): Promise<Record<string, any>> {
  return conversationView(await owned(gw, call, id))
}

export async function updateConversation(gw: Gateway, call: ApiCall, id: string): Promise<Record<string, any>> {
  const store = enabled(gw, id)
  const body = await readBody(gw, call)
  await validateShape(updateConversationValidator, body)
  const row = await store.updateMetadata(id, call.principal.user.id, checkedMetadata(body.metadata))
  if (row === null) throw notFound(id)
  return conversationView(row)
}

export async function deleteConversation(gw: Gateway, call: ApiCall, id: string): Promise<Record<string, any>> {
  if (!(await gw.conversations.delete(id, call.principal.user.id))) throw notFound(id)
  return { id, object: 'conversation.deleted', deleted: true }
}

export async function addItems(gw: Gateway, call: ApiCall, id: string): Promise<Record<string, any>> {
  const store = enabled(gw, id)
  const body = await readBody(gw, call)
  await validateShape(addItemsValidator, body)
  const added = await store.append(id, call.principal.user.id, body.items)
  if (added === null) throw notFound(id)
  return listView(added.map(itemView), false)
}

export interface ItemsQuery {
  limit?: unknown
  order?: unknown
  after?: unknown
}

export async function listItems(gw: Gateway, call: ApiCall, id: string, query: ItemsQuery): Promise<Record<string, any>> {
  const store = enabled(gw, id)
  const page = await store.list(id, call.principal.user.id, listParams(query))
  if (page === null) throw notFound(id)
  return listView(page.items.map(itemView), page.hasMore)
}

export async function showItem(gw: Gateway, call: ApiCall, id: string, itemId: string): Promise<Record<string, any>> {
  const found = await enabled(gw, id).item(id, call.principal.user.id, itemId)
  if (found === null) {
    await owned(gw, call, id)
    throw itemNotFound(itemId)
  }
  return itemView(found)
}

/** Deletes an item; answers the conversation, as OpenAI does. */
export async function deleteItem(gw: Gateway, call: ApiCall, id: string, itemId: string): Promise<Record<string, any>> {
  const store = enabled(gw, id)
  const deleted = await store.deleteItem(id, call.principal.user.id, itemId)
  const row = await owned(gw, call, id)
  if (!deleted) throw itemNotFound(itemId)
  return conversationView(row)
}

/** OpenAI's answer for an unknown conversation */
export function notFound(id: string): GatewayError {
  const shown = id.slice(0, 64).replace(/[\u0000-\u001f\u007f]/g, '\uFFFD').toWellFormed()
  const error = new GatewayError(404, 'not_found', `Conversation with id '${shown}' not found.`, 'invalid_request_error')
  error.param = 'conversation_id'
  return error
}

function itemNotFound(id: string): GatewayError {
  const shown = id.slice(0, 128).replace(/[\u0000-\u001f\u007f]/g, '\uFFFD').toWellFormed()
  const error = new GatewayError(404, 'not_found', `Item with id '${shown}' not found.`, 'invalid_request_error')
  error.param = 'item_id'
  return error
}

function enabled(gw: Gateway, id?: string): ConversationStore {
  if (gw.conversations.enabled) return gw.conversations
  if (id !== undefined) throw notFound(id)
  throw GatewayError.invalidRequest('Conversations are not kept by this gateway (RESPONSES_STORE_DAYS=0)', 'invalid_request')
}

async function owned(gw: Gateway, call: ApiCall, id: string): Promise<ConversationRow> {
  const row = gw.conversations.enabled ? await gw.conversations.find(id, call.principal.user.id) : null
  if (row === null) throw notFound(id)
  return row
}

async function readBody(gw: Gateway, call: ApiCall): Promise<Record<string, any>> {
  return parseJsonObject(await gw.service.receiveBody(readRawBody(call.req, call.res, bodyLimitFor('responses'))))
}

/** OpenAI's metadata: at most 16 pairs, names up to 64 characters, values up to 512 (the validator), no NUL */
function checkedMetadata(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {}
  const entries = Object.entries(value as Record<string, string>)
  if (entries.length > 16) throw GatewayError.invalidRequest('metadata: at most 16 pairs', 'invalid_value', 'metadata')
  for (const [name, text] of entries) {
    if (name.length > 64) throw GatewayError.invalidRequest('metadata: names of at most 64 characters', 'invalid_value', 'metadata')
    if (name.includes('\0') || text.includes('\0')) throw GatewayError.invalidRequest('metadata must not contain NUL characters', 'invalid_value', 'metadata')
  }
  return value as Record<string, string>
}

function conversationView(row: ConversationRow): Record<string, any> {
  return { id: row.id, object: 'conversation', created_at: Math.floor(row.createdAt.getTime() / 1000), metadata: row.metadata }
}

function itemView(stored: StoredItem): Record<string, any> {
  return { ...stored.item, id: stored.id }
}

function listView(data: Record<string, any>[], hasMore: boolean): Record<string, any> {
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null, has_more: hasMore }
}
