// Rich results from Python: matplotlib PNGs and chart data, pandas
// DataFrames, and display() of several objects in one cell.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { isPNG, sharedSandbox } from './helpers.mjs'

/** Runs a plotting cell and returns its single figure result. */
async function figure(sbx, code) {
  const ex = await sbx.runCode(`import matplotlib.pyplot as plt\nplt.close("all")\n${code}\nplt.show()`)
  assert.equal(ex.error, undefined, `cell failed: ${ex.error?.name}: ${ex.error?.value}`)
  const figs = ex.results.filter((r) => r.png)
  assert.equal(figs.length, 1, `want one PNG result, got ${JSON.stringify(ex.results.map((r) => r.formats?.() ?? Object.keys(r)))}`)
  return figs[0]
}

describe('rich results', () => {
  const box = sharedSandbox()
  before(() => box.setup())
  after(() => box.teardown())

  test('plt.show() gives a PNG display result', async () => {
    const fig = await figure(box.sbx, 'plt.plot([1, 2, 3], [4, 5, 6])')
    assert.ok(isPNG(fig.png), 'png is a base64 PNG')
    assert.equal(fig.isMainResult, false)
    assert.match(fig.text ?? '', /Figure/)
  })

  test('line chart data', async () => {
    const fig = await figure(
      box.sbx,
      'plt.plot([1, 2, 3], [4, 5, 6], label="up")\nplt.plot([1, 2, 3], [6, 5, 4], label="down")\n' +
        'plt.title("Lines")\nplt.xlabel("x (s)")\nplt.ylabel("y (m)")\nplt.legend()',
    )
    const c = fig.chart
    assert.ok(c, 'chart present')
    assert.equal(c.type, 'line')
    assert.equal(c.title, 'Lines')
    assert.equal(c.x_label, 'x (s)')
    assert.equal(c.y_label, 'y (m)')
    assert.deepEqual(
      c.elements.map((e) => e.label),
      ['up', 'down'],
    )
    assert.deepEqual(c.elements[0].points, [
      [1, 4],
      [2, 5],
      [3, 6],
    ])
    assert.equal(c.x_scale, 'linear')
    assert.ok(Array.isArray(c.x_ticks) && Array.isArray(c.y_tick_labels))
  })

  test('bar chart data', async () => {
    const fig = await figure(box.sbx, 'plt.bar(["a", "b", "c"], [3, 1, 2])\nplt.title("Bars")')
    const c = fig.chart
    assert.equal(c?.type, 'bar')
    assert.equal(c.title, 'Bars')
    assert.deepEqual(
      c.elements.map((e) => [e.label, Number(e.value)]),
      [
        ['a', 3],
        ['b', 1],
        ['c', 2],
      ],
    )
  })

  test('scatter chart data', async () => {
    const fig = await figure(box.sbx, 'plt.scatter([1, 2, 3], [3, 1, 2], label="pts")\nplt.legend()')
    const c = fig.chart
    assert.equal(c?.type, 'scatter')
    assert.equal(c.elements.length, 1)
    assert.deepEqual(c.elements[0].points, [
      [1, 3],
      [2, 1],
      [3, 2],
    ])
  })

  test('pie chart data', async () => {
    const fig = await figure(box.sbx, 'plt.pie([1, 1, 2], labels=["x", "y", "z"])\nplt.title("Pie")')
    const c = fig.chart
    assert.equal(c?.type, 'pie')
    assert.deepEqual(
      c.elements.map((e) => e.label),
      ['x', 'y', 'z'],
    )
    const angles = c.elements.map((e) => e.angle)
    assert.ok(angles.every((a) => typeof a === 'number'))
    assert.ok(Math.abs(angles.reduce((s, a) => s + a, 0) - 360) < 1, `angles ${angles} sum to 360`)
    assert.ok(Math.abs(angles[2] - 180) < 1, 'the half slice is 180°')
  })

  test('box-and-whisker chart data', async () => {
    const fig = await figure(box.sbx, 'plt.boxplot([[1, 2, 3, 4, 5], [2, 4, 6, 8, 30]], labels=["p", "q"])')
    const c = fig.chart
    assert.equal(c?.type, 'box_and_whisker')
    assert.deepEqual(
      c.elements.map((e) => e.label),
      ['p', 'q'],
    )
    assert.equal(c.elements[0].median, 3)
    assert.equal(c.elements[0].min, 1)
    assert.equal(c.elements[0].max, 5)
    for (const k of ['first_quartile', 'third_quartile', 'outliers']) assert.ok(k in c.elements[1], k)
  })

  test('a DataFrame gives HTML, text and data', async () => {
    const ex = await box.sbx.runCode('import pandas as pd\npd.DataFrame({"a": [1, 2], "b": ["x", "y"]})')
    assert.equal(ex.error, undefined)
    const r = ex.results.find((x) => x.isMainResult)
    assert.ok(r, 'main result')
    assert.match(r.html ?? '', /<table/)
    assert.match(r.html, /<td>x<\/td>/)
    assert.match(r.text ?? '', /a\s+b/)
    assert.deepEqual(r.data, { a: [1, 2], b: ['x', 'y'] })
  })

  test('display() of several objects in one cell', async () => {
    const ex = await box.sbx.runCode(
      'from IPython.display import display, HTML, Markdown\n' +
        'display(HTML("<b>bold</b>"))\ndisplay(Markdown("**md**"))\ndisplay({"k": 3})\n"last"',
    )
    assert.equal(ex.error, undefined)
    assert.equal(ex.results.length, 4)
    const [h, m, d, last] = ex.results
    assert.equal(h.isMainResult, false)
    assert.equal(h.html, '<b>bold</b>')
    assert.equal(m.markdown, '**md**')
    assert.equal(d.text, "{'k': 3}")
    assert.equal(last.isMainResult, true)
    assert.equal(ex.text, 'last')
  })
})
