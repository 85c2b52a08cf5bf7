/*
 * Draws every <figure class="chart" data-chart='{"labels":[...],"series":[...]}'>
 * with uPlot (served from node_modules by the app). Each series is a bar
 * series on its own y axis (left: first, right: second), sized to its box
 * and redrawn on resize. Without JavaScript the figure shows its table.
 */
;(function () {
  if (typeof uPlot === 'undefined') return
  const palette = ['#3b6fd8', '#e07b39', '#2e9e6a', '#9b59b6']

  function toSeconds(label) {
    const t = Date.parse(label.length === 10 ? label + 'T00:00:00Z' : label)
    return Math.floor(t / 1000)
  }

  function money(v) {
    if (v == null) return ''
    if (v === 0) return '$0'
    const a = Math.abs(v)
    return '$' + v.toFixed(a >= 100 ? 0 : a >= 1 ? 2 : 4)
  }

  function draw(figure) {
    const spec = JSON.parse(figure.dataset.chart)
    figure.innerHTML = ''
    const xs = spec.labels.map(toSeconds)
    const data = [xs].concat(spec.series.map((s) => s.values.map(Number)))
    const width = Math.max(280, figure.clientWidth)
    const bars = uPlot.paths.bars({ size: [0.6, 40] })
    const series = [{}].concat(
      spec.series.map((s, i) => ({
        label: s.label,
        scale: i === 0 ? 'a' : 'b',
        stroke: s.color || palette[i % palette.length],
        fill: (s.color || palette[i % palette.length]) + (i === 0 ? '55' : '00'),
        width: i === 0 ? 1 : 2,
        paths: i === 0 ? bars : undefined,
        points: { show: false },
        value: s.money ? (u, v) => money(v) : (u, v) => (v == null ? '' : v.toLocaleString()),
      }))
    )
    const axes = [
      {},
      {
        scale: 'a',
        size: 64,
        // Counts have no fractions: label only whole ticks
        values: (u, vals) =>
          vals.map((v) => (spec.series[0].money ? money(v) : Number.isInteger(v) ? v.toLocaleString() : '')),
      },
    ]
    if (spec.series[1]) {
      axes.push({
        scale: 'b',
        side: 1,
        size: 72,
        grid: { show: false },
        values: (u, vals) => vals.map((v) => (spec.series[1].money ? money(v) : v.toLocaleString())),
      })
    }
    const plot = new uPlot(
      { width, height: 240, series, axes, scales: { x: { time: true }, a: { range: (u, min, max) => [0, max || 1] }, b: { range: (u, min, max) => [0, max || 1] } } },
      data,
      figure
    )
    new ResizeObserver(() => plot.setSize({ width: Math.max(280, figure.clientWidth), height: 240 })).observe(figure)
  }

  document.querySelectorAll('figure.chart[data-chart]').forEach(draw)
})()
