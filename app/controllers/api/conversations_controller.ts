import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf, gatewayInstance } from '#gateway/http/generation_request'
import { unlessClientGone } from '#gateway/batches/upstream_calls'
import {
  addItems,
  createConversation,
  deleteConversation,
  deleteItem,
  listItems,
  showConversation,
  showItem,
  updateConversation,
} from '#gateway/conversations/conversations_api'

/** OpenAI's Conversations API, kept by the gateway (app/gateway/conversations/). */
export default class ConversationsController {
  /** POST /v1/conversations {items?, metadata?} */
  async store(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(createConversation(await gatewayInstance(), apiCallOf(ctx))))
  }

  async show(ctx: HttpContext) {
    return answer(ctx, await showConversation(await gatewayInstance(), apiCallOf(ctx), ctx.params.id))
  }

  /** POST /v1/conversations/:id {metadata} */
  async update(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(updateConversation(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }

  async destroy(ctx: HttpContext) {
    return answer(ctx, await deleteConversation(await gatewayInstance(), apiCallOf(ctx), ctx.params.id))
  }

  /** GET /v1/conversations/:id/items (limit, order, after) */
  async items(ctx: HttpContext) {
    return answer(ctx, await listItems(await gatewayInstance(), apiCallOf(ctx), ctx.params.id, ctx.request.qs()))
  }

  /** POST /v1/conversations/:id/items {items} */
  async addItems(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(addItems(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }

  async item(ctx: HttpContext) {
    return answer(ctx, await showItem(await gatewayInstance(), apiCallOf(ctx), ctx.params.id, ctx.params.itemId))
  }

  async destroyItem(ctx: HttpContext) {
    return answer(ctx, await deleteItem(await gatewayInstance(), apiCallOf(ctx), ctx.params.id, ctx.params.itemId))
  }
}

/** The JSON answer, or nothing for a client that went away. */
function answer(ctx: HttpContext, body: Record<string, any> | undefined) {
  if (body !== undefined) ctx.response.json(body)
}
