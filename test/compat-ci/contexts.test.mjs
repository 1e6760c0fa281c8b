// The context API: create per language, list, restart, remove.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { NotFoundError } from '@e2b/code-interpreter'

import { sharedSandbox } from './helpers.mjs'

describe('contexts', () => {
  const box = sharedSandbox()
  before(() => box.setup())
  after(() => box.teardown())

  test('create one per language; the language is normalised', async () => {
    const cases = [
      [undefined, 'python'],
      ['python', 'python'],
      ['js', 'javascript'],
      ['ts', 'typescript'],
      ['bash', 'bash'],
      ['r', 'r'],
    ]
    for (const [language, want] of cases) {
      const ctx = await box.sbx.createCodeContext(language ? { language } : {})
      assert.equal(typeof ctx.id, 'string')
      assert.ok(ctx.id.length > 0 && !ctx.id.includes('/'), `id ${ctx.id}`)
      assert.equal(ctx.language, want, `language for ${language}`)
      assert.equal(ctx.cwd, '/home/user')
      await box.sbx.removeCodeContext(ctx.id)
    }
  })

  test('contexts are isolated from each other and from the default', async () => {
    const a = await box.sbx.createCodeContext()
    const b = await box.sbx.createCodeContext({ language: 'python' })
    await box.sbx.runCode('v = "a"', { context: a })
    await box.sbx.runCode('v = "b"', { context: b })
    assert.equal((await box.sbx.runCode('v', { context: a })).text, 'a')
    assert.equal((await box.sbx.runCode('v', { context: b })).text, 'b')
    assert.equal((await box.sbx.runCode('"v" in globals()')).text, 'False')
    await box.sbx.removeCodeContext(a)
    await box.sbx.removeCodeContext(b)
  })

  test('list includes the defaults and created contexts', async () => {
    const ctx = await box.sbx.createCodeContext({ language: 'js' })
    const list = await box.sbx.listCodeContexts()
    assert.ok(Array.isArray(list))
    const mine = list.find((c) => c.id === ctx.id)
    assert.deepEqual(mine, { id: ctx.id, language: 'javascript', cwd: '/home/user' })
    assert.ok(list.some((c) => c.language === 'python'), 'a python context is listed')
    await box.sbx.removeCodeContext(ctx)
  })

  test('restart clears the state and keeps the context', async () => {
    const ctx = await box.sbx.createCodeContext()
    await box.sbx.runCode('before_restart = 1', { context: ctx })
    await box.sbx.restartCodeContext(ctx)
    const ex = await box.sbx.runCode('before_restart', { context: ctx })
    assert.equal(ex.error?.name, 'NameError')
    assert.equal((await box.sbx.runCode('1 + 2', { context: ctx })).text, '3')
    await box.sbx.removeCodeContext(ctx)
  })

  test('remove makes the context unusable and unlisted', async () => {
    const ctx = await box.sbx.createCodeContext()
    await box.sbx.removeCodeContext(ctx)
    const list = await box.sbx.listCodeContexts()
    assert.ok(!list.some((c) => c.id === ctx.id), 'removed context still listed')
    await assert.rejects(box.sbx.runCode('1', { context: ctx }), (err) => {
      assert.ok(err instanceof NotFoundError, `expected NotFoundError, got ${err?.constructor?.name}: ${err?.message}`)
      return true
    })
    await assert.rejects(box.sbx.restartCodeContext(ctx), (err) => err instanceof NotFoundError || /404/.test(err?.message))
  })
})
