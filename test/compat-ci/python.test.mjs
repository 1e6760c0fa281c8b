// Python execution through runCode: state, results, callbacks, errors,
// execution counts, env vars, cwd and timeouts.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { TimeoutError } from '@e2b/code-interpreter'

import { createSandbox, killQuietly, sharedSandbox } from './helpers.mjs'

describe('python', () => {
  const box = sharedSandbox()
  before(() => box.setup())
  after(() => box.teardown())

  test('state persists across cells', async () => {
    await box.sbx.runCode('counter = 41')
    const ex = await box.sbx.runCode('counter += 1\ncounter')
    assert.equal(ex.error, undefined)
    assert.equal(ex.text, '42')
  })

  test('text is the value of the last expression; prints are logs', async () => {
    const ex = await box.sbx.runCode('print("one")\nx = 2\nx * 21')
    assert.deepEqual(ex.logs.stdout, ['one\n'])
    assert.deepEqual(ex.logs.stderr, [])
    assert.equal(ex.results.length, 1)
    assert.equal(ex.results[0].isMainResult, true)
    assert.equal(ex.text, '42')
    // A str's repr loses its quotes.
    assert.equal((await box.sbx.runCode('"hello"')).text, 'hello')
    // No expression at the end: no main result.
    const none = await box.sbx.runCode('y = 1')
    assert.equal(none.text, undefined)
    assert.equal(none.results.length, 0)
  })

  test('onStdout, onStderr, onResult and onError callbacks', async () => {
    const seen = { stdout: [], stderr: [], results: [], errors: [] }
    const opts = {
      onStdout: (m) => seen.stdout.push(m),
      onStderr: (m) => seen.stderr.push(m),
      onResult: (r) => seen.results.push(r),
      onError: (e) => seen.errors.push(e),
    }
    const ex = await box.sbx.runCode('import sys\nprint("to out")\nprint("to err", file=sys.stderr)\n7 * 6', opts)
    assert.deepEqual(seen.stdout.map((m) => [m.line, m.error]), [['to out\n', false]])
    assert.deepEqual(seen.stderr.map((m) => [m.line, m.error]), [['to err\n', true]])
    assert.ok(seen.stdout[0].timestamp > 0, 'stdout timestamp')
    assert.equal(seen.results.length, 1)
    assert.equal(seen.results[0].text, '42')
    assert.equal(seen.errors.length, 0)
    assert.equal(ex.text, '42')

    const bad = await box.sbx.runCode('print("before")\n1 / 0', opts)
    assert.equal(seen.errors.length, 1)
    assert.equal(seen.errors[0].name, 'ZeroDivisionError')
    assert.equal(seen.errors[0].value, 'division by zero')
    assert.equal(bad.error?.name, 'ZeroDivisionError')
    assert.deepEqual(bad.logs.stdout, ['before\n'])
  })

  test('errors carry name, value and traceback and are not thrown', async () => {
    const ex = await box.sbx.runCode('def f():\n    return undefined_name\n\nf()')
    assert.equal(ex.error?.name, 'NameError')
    assert.match(ex.error.value, /undefined_name/)
    assert.match(ex.error.traceback, /NameError/)
    assert.match(ex.error.traceback, /undefined_name/)
    assert.equal(ex.text, undefined)
    // The kernel is still fine.
    assert.equal((await box.sbx.runCode('1 + 1')).text, '2')
  })

  test('execution count increases by one per cell', async () => {
    const ctx = await box.sbx.createCodeContext()
    const a = await box.sbx.runCode('1', { context: ctx })
    const b = await box.sbx.runCode('2', { context: ctx })
    const c = await box.sbx.runCode('raise ValueError("x")', { context: ctx })
    assert.equal(typeof a.executionCount, 'number')
    assert.equal(b.executionCount, a.executionCount + 1)
    assert.equal(c.executionCount, b.executionCount + 1)
    await box.sbx.removeCodeContext(ctx)
  })

  test('env vars for one execution only', async () => {
    const ex = await box.sbx.runCode('import os\nos.environ.get("CI_ONE_SHOT")', { envs: { CI_ONE_SHOT: 'only now' } })
    assert.equal(ex.text, 'only now')
    const later = await box.sbx.runCode('import os\nos.environ.get("CI_ONE_SHOT", "gone")')
    assert.equal(later.text, 'gone')
  })

  test('cwd: default /home/user, per context when created', async () => {
    assert.equal((await box.sbx.runCode('import os\nos.getcwd()')).text, '/home/user')
    const ctx = await box.sbx.createCodeContext({ cwd: '/tmp' })
    assert.equal(ctx.cwd, '/tmp')
    assert.equal((await box.sbx.runCode('import os\nos.getcwd()', { context: ctx })).text, '/tmp')
    await box.sbx.removeCodeContext(ctx)
  })

  test('timeoutMs interrupts a busy loop and the context stays usable', async () => {
    const ctx = await box.sbx.createCodeContext()
    await box.sbx.runCode('kept = "state survives"', { context: ctx })
    const started = Date.now()
    await assert.rejects(box.sbx.runCode('while True:\n    pass', { context: ctx, timeoutMs: 3_000 }), (err) => {
      assert.ok(err instanceof TimeoutError, `expected TimeoutError, got ${err?.constructor?.name}: ${err?.message}`)
      return true
    })
    assert.ok(Date.now() - started < 15_000, 'the timeout took far too long')
    // The next cell must not wait for the loop: the server interrupted it.
    const next = await box.sbx.runCode('kept', { context: ctx, timeoutMs: 20_000 })
    assert.equal(next.error, undefined)
    assert.equal(next.text, 'state survives')
    await box.sbx.removeCodeContext(ctx)
  })
})

describe('python with sandbox env vars', () => {
  let sbx
  before(async () => {
    sbx = await createSandbox({ envs: { CI_SANDBOX_VAR: 'from create' } })
  })
  after(() => killQuietly(sbx))

  test('sandbox env vars are visible, and an execution can override them', async () => {
    assert.equal((await sbx.runCode('import os\nos.environ.get("CI_SANDBOX_VAR")')).text, 'from create')
    const over = await sbx.runCode('import os\nos.environ.get("CI_SANDBOX_VAR")', { envs: { CI_SANDBOX_VAR: 'override' } })
    assert.equal(over.text, 'override')
    assert.equal((await sbx.runCode('import os\nos.environ.get("CI_SANDBOX_VAR")')).text, 'from create')
    // Other languages see them too.
    const js = await sbx.runCode('process.env.CI_SANDBOX_VAR', { language: 'js' })
    assert.equal(js.text, 'from create')
  })
})

describe('interpreter server supervision', () => {
  let sbx
  before(async () => {
    sbx = await createSandbox()
  })
  after(() => killQuietly(sbx))

  test('a killed interpreter server is started again', async () => {
    assert.equal((await sbx.runCode('1 + 1')).text, '2')
    // The server is the start command's child: kill it, not its supervisor.
    const killed = await sbx.commands.run("pkill -KILL -f '^/.airlock/envd interpreter'")
    assert.equal(killed.exitCode, 0)
    const deadline = Date.now() + 30_000
    let last
    for (;;) {
      try {
        const ex = await sbx.runCode('2 + 3', { timeoutMs: 10_000 })
        assert.equal(ex.text, '5')
        break
      } catch (err) {
        last = err
      }
      if (Date.now() > deadline) assert.fail(`interpreter did not come back: ${last}`)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  })
})
