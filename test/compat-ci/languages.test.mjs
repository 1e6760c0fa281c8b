// runCode in the other languages: each keeps its own default context.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { sharedSandbox } from './helpers.mjs'

describe('languages', () => {
  const box = sharedSandbox()
  before(() => box.setup())
  after(() => box.teardown())

  test("language 'js': value, console.log and state", async () => {
    const ex = await box.sbx.runCode('const base = 40\nconsole.log("from js")\nbase + 2', { language: 'js' })
    assert.equal(ex.error, undefined)
    assert.equal(ex.text, '42')
    assert.deepEqual(ex.logs.stdout, ['from js\n'])
    assert.equal((await box.sbx.runCode('base * 2', { language: 'javascript' })).text, '80')
    const err = await box.sbx.runCode('null.x', { language: 'js' })
    assert.equal(err.error?.name, 'TypeError')
  })

  test("language 'ts': type annotations and state", async () => {
    const ex = await box.sbx.runCode('const n: number = 40\nfunction add(a: number, b: number): number { return a + b }\nadd(n, 2)', {
      language: 'ts',
    })
    assert.equal(ex.error, undefined)
    assert.equal(ex.text, '42')
    assert.equal((await box.sbx.runCode('add(n, n)', { language: 'typescript' })).text, '80')
  })

  test("language 'bash': output, variables and exit status", async () => {
    const ex = await box.sbx.runCode('echo hello from bash\nCI_X=5', { language: 'bash' })
    assert.equal(ex.error, undefined)
    assert.deepEqual(ex.logs.stdout.join(''), 'hello from bash\n')
    assert.equal((await box.sbx.runCode('echo "x=$CI_X in $(pwd)"', { language: 'bash' })).logs.stdout.join(''), 'x=5 in /home/user\n')
    const bad = await box.sbx.runCode('false', { language: 'bash' })
    assert.ok(bad.error, 'a failing command reports an error')
  })

  test("language 'r': value, state, env vars and errors", async () => {
    // IRkernel sends values as display_data, so (as on E2B) they are in
    // results[0], not execution.text.
    const ex = await box.sbx.runCode('x <- c(1, 2, 3)\nsum(x) * 7', { language: 'r' })
    assert.equal(ex.error, undefined)
    assert.equal(ex.results[0]?.text.trim(), '[1] 42')
    assert.equal((await box.sbx.runCode('length(x)', { language: 'r' })).results[0]?.text.trim(), '[1] 3')
    assert.deepEqual((await box.sbx.runCode('print(sum(x))', { language: 'r' })).logs.stdout, ['[1] 6\n'])
    const env = await box.sbx.runCode('Sys.getenv("CI_R_VAR")', { language: 'r', envs: { CI_R_VAR: 'bar' } })
    assert.equal(env.results[0]?.text.trim(), '[1] "bar"')
    const unset = await box.sbx.runCode('Sys.getenv("CI_R_VAR", unset = "default")', { language: 'r' })
    assert.equal(unset.results[0]?.text.trim(), '[1] "default"')
    const err = await box.sbx.runCode('stop("boom")', { language: 'r' })
    assert.ok(err.error, 'stop() reports an error')
    assert.match(`${err.error?.value} ${err.error?.traceback}`, /boom/)
  })

  test("language 'java': values, state, System.out, env vars, contexts and errors", async () => {
    const ex = await box.sbx.runCode('int base = 40;\nSystem.out.println("from java");\nbase + 2', { language: 'java' })
    assert.equal(ex.error, undefined)
    assert.equal(ex.text, '42')
    assert.deepEqual(ex.logs.stdout, ['from java\n'])
    assert.equal((await box.sbx.runCode('"s" + base', { language: 'java' })).text, 's40')
    // E2B's Java reads env vars as system properties; they are in getenv too.
    const env = await box.sbx.runCode('System.getProperty("CI_J") + System.getenv("CI_J")', { language: 'java', envs: { CI_J: 'v' } })
    assert.equal(env.text, 'vv')
    assert.equal((await box.sbx.runCode('System.getProperty("CI_J")', { language: 'java' })).text, 'null')
    const ctx = await box.sbx.createCodeContext({ language: 'java', cwd: '/tmp' })
    assert.equal(ctx.language, 'java')
    assert.equal((await box.sbx.runCode('System.getProperty("user.dir")', { context: ctx })).text, '/tmp')
    assert.equal((await box.sbx.runCode('base', { context: ctx })).error?.name, 'CompilationException')
    const err = await box.sbx.runCode('Integer.parseInt("x")', { language: 'java' })
    assert.equal(err.error?.name, 'NumberFormatException')
    assert.match(err.error?.value ?? '', /For input string: "x"/)
  })

  test('languages do not share state with python', async () => {
    await box.sbx.runCode('shared_name = "python"')
    const js = await box.sbx.runCode('typeof shared_name', { language: 'js' })
    assert.equal(js.text, 'undefined')
  })
})
