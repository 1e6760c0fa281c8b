// The last mile of the code interpreter, through @e2b/code-interpreter:
// images from PIL, exact pie angles, R output and stdin, and a sandbox
// killed while a cell runs.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'

import { TimeoutError } from 'e2b'

import { createSandbox, isPNG, killQuietly, sharedSandbox } from './helpers.mjs'

// Indented as E2B's own tests write it: the interpreter dedents the cell.
const IMAGE = `
    import numpy
    from PIL import Image

    imarray = numpy.random.rand(16,16,3) * 255
    image = Image.fromarray(imarray.astype('uint8')).convert('RGBA')
`

describe('code interpreter: the last mile', () => {
  const box = sharedSandbox()
  before(() => box.setup())
  after(() => box.teardown())

  for (const [name, tail] of [
    ['image.show()', '    image.show()\n    print("done")\n'],
    ['an image as the last expression', '    image\n'],
    ['image.save("test.png")', '    image.save("test.png")\n'],
  ]) {
    test(`${name} comes back as a PNG result`, async () => {
      const ex = await box.sbx.runCode(IMAGE + tail)
      assert.equal(ex.error, undefined, `${ex.error?.name}: ${ex.error?.value}`)
      assert.equal(ex.results.length, 1)
      assert.ok(isPNG(ex.results[0].png))
    })
  }

  test('pie angles keep their exact values (324 and 36, as E2B returns them)', async () => {
    const ex = await box.sbx.runCode(`
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(8, 8))
ax.pie([90, 10], labels=["No", "No, in blue"], autopct='%1.1f%%', startangle=90)
ax.axis('equal')
plt.title('Will I wake up early tomorrow?')
plt.show()`)
    const chart = ex.results[0].chart
    assert.equal(chart.type, 'pie')
    assert.equal(chart.title, 'Will I wake up early tomorrow?')
    assert.deepEqual(
      chart.elements.map((e) => [e.label, e.angle, e.radius]),
      [['No', 324, 1], ['No, in blue', 36, 1]],
    )
    assert.ok(isPNG(ex.results[0].png))
  })

  test('R cells return their text output', async () => {
    const ex = await box.sbx.runCode('print("hi R")\ncat("cat out\\n")\nmessage("to stderr")\n1+1', { language: 'r' })
    assert.equal(ex.error, undefined)
    assert.deepEqual(ex.logs.stdout, ['[1] "hi R"\n', 'cat out\n'])
    assert.match(ex.logs.stderr.join(''), /to stderr/)
    // IRkernel sends values as display data, so they are results[0] (as in E2B's own R tests), not ex.text.
    assert.equal(ex.results[0]?.text, '[1] 2')
  })

  test('reading stdin fails at once with a clear error (R and Python)', async () => {
    for (const [language, code] of [
      ['r', 'x <- readline("name? ")'],
      ['python', 'input("name? ")'],
    ]) {
      const t0 = Date.now()
      const ex = await box.sbx.runCode(code, { language, timeoutMs: 30_000 })
      assert.ok(Date.now() - t0 < 10_000, `${language} took ${Date.now() - t0} ms`)
      assert.ok(ex.error, `${language}: no error`)
      assert.match(`${ex.error.name} ${ex.error.value}`, /StdinNotImplementedError/)
    }
    // The kernels keep working afterwards.
    assert.equal((await box.sbx.runCode('2+2', { language: 'r' })).results[0]?.text, '[1] 4')
  })
})

describe('code interpreter: killed during execution', () => {
  test('runCode rejects with the SDK TimeoutError saying the sandbox was killed', async () => {
    const sbx = await createSandbox()
    try {
      const execution = sbx.runCode('import time; time.sleep(60)')
      const outcome = execution.then(
        () => assert.fail('runCode resolved'),
        (e) => e,
      )
      await sleep(2_000)
      await sbx.kill()
      const err = await outcome
      assert.ok(err instanceof TimeoutError, `${err?.constructor?.name}: ${err?.message}`)
      assert.match(err.message, /sandbox was killed while the request was in progress/)
    } finally {
      await killQuietly(sbx)
    }
  })
})
