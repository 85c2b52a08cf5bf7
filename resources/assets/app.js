/*
 * Small touches on top of pages that work without JavaScript:
 * copy buttons (data-copy="#element-id"), disabling a form's submit
 * button while it is being sent (no double submits), and the channel form's
 * base URL example following the provider kind chosen
 * (data-base-url-examples='{"kind": "url"}' around the field).
 */
;(function () {
  document.querySelectorAll('[data-copy]').forEach((button) => {
    button.hidden = false
    button.addEventListener('click', async () => {
      const source = document.querySelector(button.dataset.copy)
      if (!source) return
      const text = source.value ?? source.textContent
      try {
        await navigator.clipboard.writeText(text.trim())
      } catch {
        const range = document.createRange()
        range.selectNodeContents(source)
        const selection = window.getSelection()
        selection.removeAllRanges()
        selection.addRange(range)
        document.execCommand('copy')
      }
      const label = button.textContent
      button.textContent = button.dataset.copied || 'Copied'
      setTimeout(() => (button.textContent = label), 1500)
    })
  })
  document.querySelectorAll('[data-base-url-examples]').forEach((box) => {
    const examples = JSON.parse(box.dataset.baseUrlExamples)
    const input = box.querySelector('input')
    const kind = box.closest('form')?.querySelector('select[name="provider"]')
    if (!input || !kind) return
    kind.addEventListener('change', () => (input.placeholder = examples[kind.value] || ''))
  })
  document.querySelectorAll('form[method="POST" i]').forEach((form) => {
    form.addEventListener('submit', () => {
      const button = form.querySelector('button[type="submit"], button:not([type])')
      if (button && !form.hasAttribute('data-keep-enabled')) setTimeout(() => (button.disabled = true), 0)
    })
  })
})()
