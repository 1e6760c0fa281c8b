// Smoke subset run against every isolation runtime (runc and runsc): the core
// flow of the README's example through the unmodified SDK.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { Sandbox, CommandExitError } from 'e2b'

import { createSandbox, killQuietly } from './helpers.mjs'

test('smoke: create, run, files, kill', async () => {
  const sbx = await createSandbox({ metadata: { user: 'a' }, envs: { A: '1' } })
  try {
    const r = await sbx.commands.run('echo $A; python3 -V; whoami')
    assert.match(r.stdout, /^1\nPython 3\.11\.\d+\nuser\n$/)
    await assert.rejects(sbx.commands.run('exit 3'), (e) => e instanceof CommandExitError && e.exitCode === 3)
    await sbx.files.write('/home/user/x.txt', 'hi')
    assert.equal(await sbx.files.read('/home/user/x.txt'), 'hi')
    const entries = await sbx.files.list('/home/user')
    assert.ok(entries.some((e) => e.name === 'x.txt' && e.type === 'file'))
    assert.equal(await sbx.isRunning(), true)
    const info = await sbx.getInfo()
    assert.equal(info.metadata.user, 'a')
  } finally {
    assert.equal(await sbx.kill(), true)
  }
  assert.equal(await Sandbox.kill(sbx.sandboxId), false)
  await killQuietly(sbx)
})
