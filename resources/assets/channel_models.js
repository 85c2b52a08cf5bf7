/*
 * Channel model lists (the pages work without it, but for the new-channel
 * form's preview, which needs it):
 * - the "Models upstream" page: a filter and select-all / not served / none
 *   buttons over the checkboxes ([data-model-picker]);
 * - the new-channel form: "Fetch models" posts the kind, base URL, key and
 *   headers typed to [data-models-preview] (JSON back), lists the ids with
 *   checkboxes, and ticking one adds it to (or takes it out of) the Models field.
 * No markup from the upstream is ever parsed: ids are set as text.
 */
;(function () {
  document.querySelectorAll('[data-model-picker]').forEach((form) => {
    const tools = form.querySelector('.model-picker-tools')
    if (tools) tools.hidden = false
    const rows = () => [...form.querySelectorAll('[data-model-row]')]
    const filter = form.querySelector('[data-model-filter]')
    filter?.addEventListener('input', () => {
      const text = filter.value.trim().toLowerCase()
      rows().forEach((row) => (row.hidden = text !== '' && !row.textContent.toLowerCase().includes(text)))
    })
    form.querySelectorAll('[data-model-select]').forEach((button) => {
      button.addEventListener('click', () => {
        const which = button.dataset.modelSelect
        rows().forEach((row) => {
          if (row.hidden) return
          const box = row.querySelector('input[type="checkbox"]')
          box.checked = which === 'all' || (which === 'unserved' && row.dataset.served === '0')
        })
      })
    })
  })

  document.querySelectorAll('[data-models-preview]').forEach((box) => {
    const form = box.closest('form')
    const button = box.querySelector('[data-models-fetch]')
    const status = box.querySelector('[data-models-status]')
    const list = box.querySelector('[data-models-list]')
    const models = form?.querySelector('[name="models"]')
    if (!form || !button || !status || !list || !models) return
    box.hidden = false

    const typed = () => models.value.split(/[,\n]/).map((s) => s.trim()).filter(Boolean)
    const setTyped = (ids) => (models.value = ids.join(', '))

    button.addEventListener('click', async () => {
      const body = new URLSearchParams()
      for (const name of ['_csrf', 'provider', 'baseUrl', 'apiKey', 'extraHeaders', 'models', 'modelMapping']) {
        const field = form.querySelector(`[name="${name}"]`)
        if (field) body.set(name, field.value)
      }
      button.disabled = true
      status.textContent = 'Asking the upstream…'
      list.replaceChildren()
      try {
        const response = await fetch(box.dataset.modelsPreview, {
          method: 'POST',
          headers: { 'accept': 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
          body,
          credentials: 'same-origin',
          redirect: 'manual',
        })
        const answer = await response.json().catch(() => null)
        if (!response.ok || !answer || !Array.isArray(answer.models)) {
          status.textContent = answer?.error || answer?.errors?.[0]?.message || `The gateway answered HTTP ${response.status || 'redirect'}: reload the page and try again.`
          return
        }
        const unserved = answer.models.filter((m) => !m.served).length
        status.textContent =
          `${answer.models.length} models upstream, ${unserved} not served by the models typed` +
          (answer.truncated ? ' (the list was cut: more than the gateway reads)' : '') +
          '. Tick the ones to add to Models.'
        answer.models.forEach((model, index) => {
          const label = document.createElement('label')
          const check = document.createElement('input')
          check.type = 'checkbox'
          check.id = `preview-model-${index}`
          check.checked = typed().includes(model.id)
          check.addEventListener('change', () => {
            const now = typed().filter((id) => id !== model.id)
            setTyped(check.checked ? [...now, model.id] : now)
          })
          const name = document.createElement('span')
          name.className = 'mono'
          name.textContent = model.id
          label.append(check, name)
          if (model.served) {
            const badge = document.createElement('span')
            badge.className = 'badge badge--ok'
            badge.textContent = 'served'
            label.append(' ', badge)
          }
          list.append(label)
        })
      } catch {
        status.textContent = 'The gateway could not be reached.'
      } finally {
        button.disabled = false
      }
    })
  })
})()
