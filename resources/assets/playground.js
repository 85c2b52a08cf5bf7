/*
 * The portal's Playground (/dashboard/playground): a chat with a model,
 * called from the browser at the gateway's own POST /v1/chat/completions with
 * a key the user pastes. The key stays in this tab's sessionStorage and goes
 * only to /v1 (never to a page route). Streams are read with fetch and a
 * ReadableStream, tokens shown as they come; Stop aborts the request.
 * Everything a model or the API says is put in the page as text
 * (textContent), never as HTML.
 */
;(function () {
  const root = document.querySelector('[data-playground]')
  if (!root) return
  const text = JSON.parse(document.getElementById('playground-i18n').textContent)
  const $ = (id) => document.getElementById(id)
  const keyInput = $('pg-key')
  const modelSelect = $('pg-model')
  const modelOther = $('pg-model-other')
  const systemInput = $('pg-system')
  const temperatureInput = $('pg-temperature')
  const maxTokensInput = $('pg-max-tokens')
  const streamInput = $('pg-stream')
  const transcript = $('pg-transcript')
  const composer = $('pg-composer')
  const messageInput = $('pg-message')
  const sendButton = $('pg-send')
  const stopButton = $('pg-stop')
  const clearButton = $('pg-clear')

  const KEY_STORE = 'gateway.playground.key'
  const numbers = new Intl.NumberFormat(document.documentElement.lang || undefined)
  const fill = (template, values) => template.replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m))

  /** The conversation sent with each call (the system prompt is added in front when set). */
  let history = []
  /** The request in flight: its AbortController, or null. */
  let running = null
  /** Bumped by Clear: an answer that ends after it joins no history. */
  let conversation = 0

  // The key: this tab only.
  try {
    keyInput.value = sessionStorage.getItem(KEY_STORE) || ''
  } catch {}
  keyInput.addEventListener('input', () => {
    try {
      const key = keyInput.value.trim()
      if (key) sessionStorage.setItem(KEY_STORE, key)
      else sessionStorage.removeItem(KEY_STORE)
    } catch {}
  })
  $('pg-key-forget').addEventListener('click', () => {
    keyInput.value = ''
    try {
      sessionStorage.removeItem(KEY_STORE)
    } catch {}
    keyInput.focus()
  })

  // A model the list does not have: typed in.
  const syncModelOther = () => {
    modelOther.hidden = modelSelect.value !== ''
  }
  modelSelect.addEventListener('change', () => {
    syncModelOther()
    if (!modelOther.hidden) modelOther.focus()
  })
  syncModelOther()
  const currentModel = () => (modelSelect.value || modelOther.value).trim()

  // Ctrl+Enter / Cmd+Enter sends; Enter alone is a new line.
  messageInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault()
      composer.requestSubmit()
    }
  })
  composer.addEventListener('submit', (event) => {
    event.preventDefault()
    send()
  })
  stopButton.addEventListener('click', () => running?.abort())
  clearButton.addEventListener('click', () => {
    running?.abort()
    conversation++
    history = []
    const empty = element('p', 'transcript__empty muted', text.empty)
    empty.dataset.empty = ''
    transcript.replaceChildren(empty)
    messageInput.focus()
  })

  function element(tag, className, content) {
    const node = document.createElement(tag)
    if (className) node.className = className
    if (content !== undefined) node.textContent = content
    return node
  }

  /** One turn in the transcript: who (and which model), its text (as text), room for notes under it. */
  function addTurn(role, label, content, model) {
    transcript.querySelector('[data-empty]')?.remove()
    const turn = element('div', `turn turn--${role}`)
    turn.dataset.role = role
    const head = element('div', 'turn__role', label)
    if (model) head.append(' · ', element('span', 'turn__model', model))
    turn.append(head, element('div', 'turn__text', content))
    transcript.append(turn)
    scrollDown(true)
    return turn
  }

  /** Follows the answer down while the reader is at the end; leaves alone someone who scrolled up to read. */
  let following = true
  transcript.addEventListener('scroll', () => {
    following = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 48
  })
  function scrollDown(always) {
    if (always) following = true
    if (following) transcript.scrollTop = transcript.scrollHeight
  }

  /** A problem before any call (no key, no model...): said in the transcript, nothing sent. */
  function notice(message, focus) {
    const turn = addTurn('error', '', message)
    turn.setAttribute('role', 'alert')
    focus?.focus()
  }

  function setRunning(controller) {
    running = controller
    sendButton.disabled = !!controller
    sendButton.setAttribute('aria-busy', controller ? 'true' : 'false')
    stopButton.hidden = !controller
  }

  /**
   * The optional number fields: a number within the field's min and max,
   * undefined when empty, null when invalid. Temperature takes any step
   * (0.75 is a fine temperature).
   */
  function numberField(input, integer) {
    const raw = input.value.trim()
    if (raw === '') return undefined
    const value = Number(raw)
    if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || !input.checkValidity()) return null
    return value
  }

  async function send() {
    if (running) return
    const key = keyInput.value.trim()
    const model = currentModel()
    const content = messageInput.value
    if (!key) return notice(text.needKey, keyInput)
    if (!model) return notice(text.needModel, modelSelect.value ? modelSelect : modelOther)
    if (!content.trim()) return notice(text.needMessage, messageInput)
    const temperature = numberField(temperatureInput, false)
    const maxTokens = numberField(maxTokensInput, true)
    if (temperature === null) return notice(text.badNumber, temperatureInput)
    if (maxTokens === null) return notice(text.badNumber, maxTokensInput)

    const stream = streamInput.checked
    const messages = []
    const system = systemInput.value.trim()
    if (system) messages.push({ role: 'system', content: system })
    messages.push(...history, { role: 'user', content })
    const body = { model, messages, stream }
    if (stream) body.stream_options = { include_usage: true }
    if (temperature !== undefined) body.temperature = temperature
    if (maxTokens !== undefined) body.max_tokens = maxTokens

    const userTurn = addTurn('user', text.you, content)
    messageInput.value = ''
    const turn = addTurn('assistant', text.assistant, '', model)
    const answer = turn.querySelector('.turn__text')
    turn.setAttribute('aria-busy', 'true')
    const controller = new AbortController()
    setRunning(controller)

    const started = performance.now()
    const startedIn = conversation
    const result = { content: '', usage: null, firstToken: null, requestId: null, stopped: false, streamed: stream }
    try {
      const response = await fetch('/v1/chat/completions', {
        method: 'POST',
        // The key only: no cookie goes to the API.
        credentials: 'omit',
        headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: controller.signal,
      })
      result.requestId = response.headers.get('x-request-id')
      if (!response.ok) {
        await showError(turn, response, result.requestId)
        return failed(userTurn, content)
      }
      // One text node the pieces are appended to: no re-rendering of the whole answer per token.
      let answerText = null
      const onText = (piece) => {
        if (result.firstToken === null) result.firstToken = performance.now() - started
        if (!piece) return
        result.content += piece
        if (answerText) answerText.appendData(piece)
        else answer.append((answerText = document.createTextNode(piece)))
        scrollDown()
      }
      const onReasoning = (piece) => {
        if (result.firstToken === null) result.firstToken = performance.now() - started
        const box = reasoningBox(turn)
        if (box.firstChild) box.firstChild.appendData(piece)
        else box.append(piece)
      }
      if (stream && (response.headers.get('content-type') || '').includes('text/event-stream')) {
        const streamError = await readStream(response.body, onText, onReasoning, (usage) => (result.usage = usage))
        if (streamError) {
          addError(turn, streamError, null, result.requestId)
          if (!result.content) return failed(userTurn, content)
        }
      } else {
        result.streamed = false
        const data = await response.json()
        const message = data.choices?.[0]?.message ?? {}
        const reasoning = message.reasoning_content ?? message.reasoning
        if (typeof reasoning === 'string' && reasoning) onReasoning(reasoning)
        onText(typeof message.content === 'string' ? message.content : message.refusal ?? '')
        result.usage = data.usage ?? null
      }
    } catch (error) {
      if (error?.name === 'AbortError') {
        result.stopped = true
        if (!result.content) {
          turn.append(element('p', 'turn__meta', text.stopped))
          return failed(userTurn, null)
        }
      } else {
        addError(turn, fill(text.network, { message: error?.message ?? String(error) }), null, result.requestId)
        if (!result.content) return failed(userTurn, content)
      }
    } finally {
      turn.removeAttribute('aria-busy')
      if (running === controller) setRunning(null)
    }
    if (startedIn === conversation) history.push({ role: 'user', content }, { role: 'assistant', content: result.content })
    turn.append(metaLine(result, performance.now() - started))
  }

  /** A turn that got no answer: out of the history; its text back in the box when the box is empty. */
  function failed(userTurn, content) {
    userTurn.classList.add('turn--failed')
    if (content !== null && !messageInput.value) messageInput.value = content
  }

  function reasoningBox(turn) {
    let box = turn.querySelector('.turn__reasoning pre')
    if (!box) {
      const details = element('details', 'turn__reasoning')
      details.append(element('summary', '', text.reasoning), (box = element('pre', '')))
      turn.querySelector('.turn__text').before(details)
    }
    return box
  }

  /** Under an answer: tokens, time to first token, total time, and its request id linking to the usage log. */
  function metaLine(result, totalMs) {
    const meta = element('p', 'turn__meta')
    meta.dataset.meta = ''
    const parts = []
    if (result.usage) {
      parts.push(fill(text.usage, { prompt: numbers.format(result.usage.prompt_tokens ?? 0), completion: numbers.format(result.usage.completion_tokens ?? 0) }))
    } else {
      parts.push(text.noUsage)
    }
    if (result.firstToken !== null && result.streamed) parts.push(fill(text.firstToken, { ms: numbers.format(Math.round(result.firstToken)) }))
    parts.push(fill(text.latency, { ms: numbers.format(Math.round(totalMs)) }))
    if (result.stopped) parts.push(text.stopped)
    meta.append(element('span', '', parts.join(' · ')))
    if (result.requestId) {
      meta.append(' · ')
      const link = element('a', '', fill(text.request, { id: result.requestId }))
      link.href = fill(text.requestLink, { id: encodeURIComponent(result.requestId) })
      link.title = text.requestTitle
      link.dataset.requestId = result.requestId
      // In a new tab: the conversation lives in this page, and following the link here would end it.
      link.target = '_blank'
      link.rel = 'noopener'
      meta.append(link)
    }
    if (result.usage) {
      meta.dataset.promptTokens = String(result.usage.prompt_tokens ?? 0)
      meta.dataset.completionTokens = String(result.usage.completion_tokens ?? 0)
    }
    return meta
  }

  /** An error answer: its message as the API said it, and what to do about it. */
  async function showError(turn, response, requestId) {
    let message = ''
    try {
      const data = await response.json()
      // OpenAI's shape {error: {message}}; a proxy's plain {message} just in case.
      message = data?.error?.message ?? data?.message ?? ''
    } catch {}
    if (!message) message = fill(text.error, { status: response.status })
    let hint = null
    if (response.status === 401) hint = { text: text.error401, href: text.keysLink }
    else if (response.status === 402) hint = { text: text.error402, href: text.billingLink }
    else if (response.status === 429) {
      const retry = response.headers.get('retry-after')
      hint = { text: retry && /^\d+$/.test(retry) ? `${text.error429} ${fill(text.retryAfter, { seconds: numbers.format(Number(retry)) })}` : text.error429 }
    } else if (response.status >= 500) hint = { text: text.error5xx }
    addError(turn, message, hint, requestId, response.status)
  }

  function addError(turn, message, hint, requestId, status) {
    const box = element('div', 'turn__error')
    box.setAttribute('role', 'alert')
    if (status) box.dataset.status = String(status)
    box.append(element('strong', '', status ? `${status} · ` : ''), element('span', '', message))
    if (hint) {
      const line = element('div', 'small')
      if (hint.href) {
        const link = element('a', '', hint.text)
        link.href = hint.href
        line.append(link)
      } else line.textContent = hint.text
      box.append(line)
    }
    if (requestId) box.append(element('div', 'small muted', fill(text.request, { id: requestId })))
    // A stream cut after some text keeps that text, the error under it.
    const answer = turn.querySelector('.turn__text')
    if (answer.textContent) answer.after(box)
    else answer.replaceWith(box)
    scrollDown()
  }

  /**
   * Reads an OpenAI chat stream: `data: {...}` events separated by a blank
   * line, `data: [DONE]` at the end. Returns the message of an error event
   * the stream ended with, else null.
   */
  async function readStream(body, onText, onReasoning, onUsage) {
    const reader = body.getReader()
    const decoder = new TextDecoder()
    let buffer = ''
    let errorMessage = null
    const handle = (event) => {
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n')
      if (!data || data === '[DONE]') return
      let chunk
      try {
        chunk = JSON.parse(data)
      } catch {
        return
      }
      if (chunk.error) {
        errorMessage = chunk.error.message ?? String(chunk.error)
        return
      }
      const delta = chunk.choices?.[0]?.delta ?? {}
      const reasoning = delta.reasoning_content ?? delta.reasoning
      if (typeof reasoning === 'string' && reasoning) onReasoning(reasoning)
      if (typeof delta.content === 'string' && delta.content) onText(delta.content)
      else if (typeof delta.refusal === 'string' && delta.refusal) onText(delta.refusal)
      if (chunk.usage) onUsage(chunk.usage)
    }
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      buffer += decoder.decode(value, { stream: true })
      const events = buffer.split(/\r?\n\r?\n/)
      buffer = events.pop()
      events.forEach(handle)
    }
    buffer += decoder.decode()
    if (buffer.trim()) handle(buffer)
    return errorMessage
  }
})()
