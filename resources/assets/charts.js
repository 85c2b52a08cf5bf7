/*
 * Draws every <figure class="chart" data-chart='{"labels":[...],"series":[...]}'>
 * with uPlot (served from node_modules by the app). The first series is
 * bars, the second a line, each on its own y axis (left: first, right:
 * second; counts on whole ticks), sized to its box and redrawn on resize.
 * The x range leaves half a day on each side so the first and last bars
 * show whole. Without JavaScript the figure shows its table.
 */
;(function () {
  if (typeof uPlot === 'undefined') return
  const palette = ['#3b6fd8', '#e07b39', '#2e9e6a', '#9b59b6']
  /** Tick steps of a count axis: whole numbers only */
  const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9]

  function toSeconds(label) {
    const t = Date.parse(label.length === 10 ? label + 'T00:00:00Z' : label)
    return Math.floor(t / 1000)
  }

  /** A summary amount as the pages show it (formatMoney 'total' in app/services/format.ts): cents from one cent up, two significant digits under a cent */
  function money(v) {
    if (v == null) return ''
    const a = Math.abs(v)
    if (a === 0) return '$0.00'
    if (a < 0.000001) return v < 0 ? '>-$0.000001' : '<$0.000001'
    const d = a >= 0.01 ? 2 : Math.min(6, 1 - Math.floor(Math.log10(a)))
    return (v < 0 ? '-$' : '$') + a.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: d })
  }

  /** Money axis ticks, all with the decimals their step needs: $0, $5, $10 or $0.00, $0.25, $0.50 */
  function moneyTicks(vals) {
    const step = vals.length > 1 ? Math.abs(vals[1] - vals[0]) : 1
    let d = 0
    while (d < 6 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6) d++
    if (d === 1) d = 2
    return vals.map((v) => (v == null ? '' : (v < 0 ? '-$' : '$') + Math.abs(v).toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })))
  }

  function draw(figure) {
    const spec = JSON.parse(figure.dataset.chart)
    figure.innerHTML = ''
    const xs = spec.labels.map(toSeconds)
    const data = [xs].concat(spec.series.map((s) => s.values.map(Number)))
    const width = Math.max(280, figure.clientWidth)
    const bars = uPlot.paths.bars({ size: [0.6, 40] })
    const series = [{ label: spec.timeLabel || 'Time' }].concat(
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
    // A y axis for series s: money ticks alike, counts (requests, errors) on whole ticks only
    // (uPlot's default steps go down to 0.2 for a scale of 0..1).
    function yAxis(s, scale) {
      const axis = { scale, values: (u, vals) => (s.money ? moneyTicks(vals) : vals.map((v) => v.toLocaleString())) }
      if (!s.money) axis.incrs = COUNT_STEPS
      return axis
    }
    const axes = [{}, Object.assign(yAxis(spec.series[0], 'a'), { size: 64 })]
    if (spec.series[1]) axes.push(Object.assign(yAxis(spec.series[1], 'b'), { side: 1, size: 72, grid: { show: false } }))
    // Bars are centred on their day: pad the x range by half a step on each side, or the
    // first and last bars (today) are cut in half at the edges of the plot.
    let step = 86400
    for (let i = 1; i < xs.length; i++) step = Math.min(step, xs[i] - xs[i - 1] || step)
    const counts = (s) => (s && !s.money ? (u, min, max) => [0, Math.max(1, Math.ceil(max || 0))] : (u, min, max) => [0, max || 1])
    const plot = new uPlot(
      {
        width,
        height: 240,
        series,
        axes,
        scales: {
          x: { time: true, range: (u, min, max) => [min - step / 2, max + step / 2] },
          a: { range: counts(spec.series[0]) },
          b: { range: counts(spec.series[1]) },
        },
      },
      data,
      figure
    )
    new ResizeObserver(() => plot.setSize({ width: Math.max(280, figure.clientWidth), height: 240 })).observe(figure)
  }

  document.querySelectorAll('figure.chart[data-chart]').forEach(draw)
})()
