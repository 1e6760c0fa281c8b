// Keys belong to teams: a key of another team cannot see, connect to, change
// or kill a sandbox, and its list does not show it; the SDK reads that as
// "not found", exactly as with E2B.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { NotFoundError, Sandbox } from 'e2b'

import { createSandbox, env, killQuietly, SUITE_TAG } from './helpers.mjs'

const otherKey = process.env.E2B_API_KEY_OTHER_TEAM
if (!otherKey) {
  throw new Error('teams tests need E2B_API_KEY_OTHER_TEAM: a key of a second team (airlock keys create --team other)')
}
const other = { apiKey: otherKey }

describe('teams', () => {
  let mine
  before(async () => {
    mine = await createSandbox()
  })
  after(() => killQuietly(mine))

  test('another team cannot reach my sandbox through the control API', async () => {
    const id = mine.sandboxId
    await assert.rejects(Sandbox.getInfo(id, other), NotFoundError)
    await assert.rejects(Sandbox.connect(id, other), NotFoundError)
    await assert.rejects(Sandbox.setTimeout(id, 60_000, other), NotFoundError)
    assert.equal(await Sandbox.kill(id, other), false)
    await assert.rejects(Sandbox.getMetrics(id, other), NotFoundError)
    const paused = await Sandbox.betaPause(id, other).then(
      () => 'paused',
      (e) => e,
    )
    assert.ok(paused instanceof NotFoundError, `pause by another team: ${paused}`)

    const listed = await Sandbox.list({ ...other, query: { metadata: SUITE_TAG } }).nextItems()
    assert.ok(!listed.some((s) => s.sandboxId === id), 'another team lists my sandbox')
    const mineListed = await Sandbox.list({ query: { metadata: SUITE_TAG } }).nextItems()
    assert.ok(mineListed.some((s) => s.sandboxId === id), 'my own list lacks my sandbox')

    // Still alive and mine.
    assert.equal(await mine.isRunning(), true)
    assert.equal((await mine.commands.run('echo still')).stdout, 'still\n')
  })

  test("another team's sandboxes are its own", async () => {
    const theirs = await Sandbox.create({ ...other, timeoutMs: 60_000, metadata: SUITE_TAG })
    try {
      await assert.rejects(Sandbox.getInfo(theirs.sandboxId), NotFoundError)
      assert.equal(await Sandbox.kill(theirs.sandboxId), false)
      assert.equal((await theirs.commands.run('echo theirs')).stdout, 'theirs\n')
      assert.equal((await Sandbox.getInfo(theirs.sandboxId, other)).sandboxId, theirs.sandboxId)
    } finally {
      await Sandbox.kill(theirs.sandboxId, other)
    }
  })

  test('built-in templates are readable by every team and deletable by none', async () => {
    for (const apiKey of [env.apiKey, otherKey]) {
      const res = await fetch(`${env.apiUrl}/templates/base`, { method: 'DELETE', headers: { 'X-API-KEY': apiKey } })
      assert.equal(res.status, 403)
      assert.equal((await res.json()).code, 403)
      const alias = await fetch(`${env.apiUrl}/templates/aliases/base`, { headers: { 'X-API-KEY': apiKey } })
      assert.equal(alias.status, 200)
    }
  })

  test('admin routes need an admin key', async () => {
    const res = await fetch(`${env.apiUrl}/admin/sandboxes`, { headers: { 'X-API-KEY': otherKey } })
    assert.equal(res.status, 403)
  })
})
