/*
 * Small touches on top of pages that work without JavaScript:
 * copy buttons (data-copy="#element-id"), and disabling a form's submit
 * button while it is being sent (no double submits).
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
  document.querySelectorAll('form[method="POST" i]').forEach((form) => {
    form.addEventListener('submit', () => {
      const button = form.querySelector('button[type="submit"], button:not([type])')
      if (button && !form.hasAttribute('data-keep-enabled')) setTimeout(() => (button.disabled = true), 0)
    })
  })
})()
