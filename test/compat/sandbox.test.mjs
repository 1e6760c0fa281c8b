// Sandbox lifecycle through the control API: create, info, list, timeout, connect, kill.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import {
  AuthenticationError,
  NotFoundError,
  Sandbox,
  SandboxError,
  SandboxNotFoundError,
  TimeoutError,
} from 'e2b'

import {
  SUITE_TAG,
  SandboxTracker,
  collectPages,
  errorOf,
  sleep,
  uniqueName,
} from './helpers.mjs'

const BAD_API_KEY = `e2b_${'0'.repeat(40)}`

function semverAtLeast(v, min) {
  const a = v.split('.').map(Number)
  const b = min.split('.').map(Number)
  for (let i = 0; i < 3; i++) {
    if (a[i] !== b[i]) return a[i] > b[i]
  }
  return true
}

function ids(items) {
  return items.map((s) => s.sandboxId).sort()
}

describe('sandbox lifecycle', () => {
  const tracker = new SandboxTracker()
  const run = uniqueName('run')
  // The note value exercises the SDK's double URL-encoding of the metadata filter.
  const metadata = { run, role: 'main', note: 'a b&c=d/é?+%' }
  const envs = { A: '1', GREETING: 'hello world' }
  const timeoutMs = 120_000
  let main
  let extras
  let createStartedAt

  before(async () => {
    createStartedAt = Date.now()
    main = await tracker.create({ metadata, envs, timeoutMs })
    // Two more sandboxes of the same run, for the list filter and pagination tests.
    extras = await Promise.all([
      tracker.create({ metadata: { run, role: 'extra' } }),
      tracker.create({ metadata: { run, role: 'extra' } }),
    ])
  })

  after(() => tracker.killAll())

  test('create returns an instance with a lowercase alphanumeric sandbox id', () => {
    for (const sbx of [main, ...extras]) {
      assert.match(sbx.sandboxId, /^[a-z0-9]+$/)
    }
    assert.equal(new Set([main, ...extras].map((s) => s.sandboxId)).size, 3, 'ids are unique')
  })

  test('getInfo reports template, metadata, times, state and resources', async () => {
    const info = await main.getInfo()
    const now = Date.now()

    assert.equal(info.sandboxId, main.sandboxId)
    assert.equal(typeof info.templateId, 'string')
    assert.ok(info.templateId.length > 0, 'templateId is empty')
    // The default template is `base`; it is reported as the ID or as the alias (name).
    assert.ok(
      info.templateId === 'base' || info.name === 'base',
      `expected template base, got templateId=${info.templateId} name=${info.name}`,
    )
    assert.deepEqual(info.metadata, { ...SUITE_TAG, ...metadata })
    assert.equal(info.state, 'running')

    assert.ok(info.startedAt instanceof Date && !Number.isNaN(info.startedAt.getTime()), 'startedAt')
    assert.ok(info.endAt instanceof Date && !Number.isNaN(info.endAt.getTime()), 'endAt')
    assert.ok(info.startedAt < info.endAt, 'startedAt < endAt')
    assert.ok(info.startedAt.getTime() >= createStartedAt - 5_000, 'startedAt not before create')
    assert.ok(info.startedAt.getTime() <= now + 5_000, 'startedAt not in the future')
    // endAt = start + requested timeout (seconds resolution, some slack for clocks).
    const lifetime = info.endAt.getTime() - info.startedAt.getTime()
    assert.ok(Math.abs(lifetime - timeoutMs) <= 5_000, `lifetime ${lifetime} ms, want ~${timeoutMs}`)

    assert.ok(Number.isInteger(info.cpuCount) && info.cpuCount >= 1, `cpuCount ${info.cpuCount}`)
    assert.ok(Number.isInteger(info.memoryMB) && info.memoryMB >= 128, `memoryMB ${info.memoryMB}`)
    assert.match(info.envdVersion, /^\d+\.\d+\.\d+$/)
    assert.ok(semverAtLeast(info.envdVersion, '0.6.4'), `envdVersion ${info.envdVersion} < 0.6.4`)
  })

  test('isRunning is true while the sandbox is alive', async () => {
    assert.equal(await main.isRunning(), true)
  })

  test('list filters by metadata (all pairs must match, special characters survive)', async () => {
    const cases = [
      { query: { run }, want: ids([main, ...extras]) },
      { query: { run, role: 'main' }, want: [main.sandboxId] },
      { query: { run, role: 'extra' }, want: ids(extras) },
      { query: { run, note: metadata.note }, want: [main.sandboxId] },
      { query: { run, role: 'nobody' }, want: [] },
      { query: { run: uniqueName('absent') }, want: [] },
    ]
    for (const c of cases) {
      const items = (await collectPages(Sandbox.list({ query: { metadata: c.query } }))).flat()
      assert.deepEqual(ids(items), c.want, `metadata filter ${JSON.stringify(c.query)}`)
    }
  })

  test('list items carry the listed-sandbox fields', async () => {
    const items = (await collectPages(Sandbox.list({ query: { metadata: { run, role: 'main' } } }))).flat()
    assert.equal(items.length, 1)
    const [item] = items
    const info = await main.getInfo()
    assert.equal(item.sandboxId, main.sandboxId)
    assert.equal(item.templateId, info.templateId)
    assert.deepEqual(item.metadata, { ...SUITE_TAG, ...metadata })
    assert.equal(item.state, 'running')
    assert.equal(item.startedAt.getTime(), info.startedAt.getTime())
    assert.equal(item.cpuCount, info.cpuCount)
    assert.equal(item.memoryMB, info.memoryMB)
    assert.equal(item.envdVersion, info.envdVersion)
  })

  test('list filters by state', async () => {
    const running = (await collectPages(Sandbox.list({ query: { state: ['running'] } }))).flat()
    assert.ok(running.some((s) => s.sandboxId === main.sandboxId), 'main sandbox listed as running')
    for (const s of running) assert.equal(s.state, 'running', `sandbox ${s.sandboxId}`)

    const runningOfRun = (
      await collectPages(Sandbox.list({ query: { state: ['running'], metadata: { run } } }))
    ).flat()
    assert.deepEqual(ids(runningOfRun), ids([main, ...extras]))

    const pausedOfRun = (
      await collectPages(Sandbox.list({ query: { state: ['paused'], metadata: { run } } }))
    ).flat()
    assert.deepEqual(pausedOfRun, [])
  })

  test('list paginates with limit 2: every sandbox exactly once, newest first', async () => {
    const paginator = Sandbox.list({ query: { metadata: { run } }, limit: 2 })
    const pages = await collectPages(paginator)
    assert.deepEqual(pages.map((p) => p.length), [2, 1], 'page sizes')
    assert.equal(paginator.hasNext, false)
    assert.equal(paginator.nextToken, undefined)

    const all = pages.flat()
    assert.deepEqual(ids(all), ids([main, ...extras]), 'each sandbox seen exactly once')
    for (let i = 1; i < all.length; i++) {
      assert.ok(all[i - 1].startedAt >= all[i].startedAt, 'default order is startedAt descending')
    }

    const asc = (await collectPages(Sandbox.list({ query: { metadata: { run } }, limit: 2, order: 'asc' }))).flat()
    assert.deepEqual(ids(asc), ids(all))
    for (let i = 1; i < asc.length; i++) {
      assert.ok(asc[i - 1].startedAt <= asc[i].startedAt, 'order asc is startedAt ascending')
    }
  })

  test('Sandbox.connect returns a working instance of the same sandbox', async () => {
    await main.files.write('/tmp/connect-check.txt', 'from-main')

    const connected = await Sandbox.connect(main.sandboxId)
    assert.equal(connected.sandboxId, main.sandboxId)
    // A reconnect must hand out the same envd token (instance connect() keeps the old one).
    assert.equal(connected.envdAccessToken, main.envdAccessToken)

    const r = await connected.commands.run('echo "$A"; cat /tmp/connect-check.txt')
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, '1\nfrom-main')
    assert.equal(await connected.isRunning(), true)
  })

  test('kill returns true, a second kill returns false, the sandbox is gone', async () => {
    const sbx = await tracker.create({ metadata: { run, role: 'kill' } })
    assert.equal(await sbx.kill(), true)
    assert.equal(await Sandbox.kill(sbx.sandboxId), false)

    assert.equal(await sbx.isRunning(), false, 'isRunning after kill (envd route answers 502)')
    await assert.rejects(sbx.getInfo(), errorOf(SandboxNotFoundError))
    await assert.rejects(Sandbox.connect(sbx.sandboxId), errorOf(SandboxNotFoundError))
    const listed = (await collectPages(Sandbox.list({ query: { metadata: { run, role: 'kill' } } }))).flat()
    assert.deepEqual(listed, [], 'killed sandbox is not listed')
  })

  test('setTimeout shortens the lifetime and the sandbox expires', { timeout: 60_000 }, async () => {
    const sbx = await tracker.create({ metadata: { run, role: 'expire' }, timeoutMs: 60_000 })
    await sbx.setTimeout(3_000)
    const setAt = Date.now()

    const info = await sbx.getInfo()
    const remaining = info.endAt.getTime() - setAt
    assert.ok(remaining <= 5_000, `endAt ${remaining} ms away after setTimeout(3000)`)

    let running = true
    while (running) {
      assert.ok(Date.now() - setAt < 15_000, 'sandbox still running 15 s after setTimeout(3000)')
      await sleep(250)
      running = await sbx.isRunning()
    }
    assert.ok(Date.now() - setAt >= 2_000, 'sandbox died well before its timeout')

    await assert.rejects(sbx.getInfo(), errorOf(SandboxNotFoundError))
    await assert.rejects(Sandbox.setTimeout(sbx.sandboxId, 10_000), errorOf(SandboxNotFoundError))
    // envd traffic to a dead sandbox gets 502 from the gateway, which the SDK maps so:
    await assert.rejects(sbx.commands.run('true'), errorOf(SandboxNotFoundError))
    await assert.rejects(sbx.files.read('/etc/hostname'), errorOf(TimeoutError))
    assert.equal(await Sandbox.kill(sbx.sandboxId), false)
  })

  test('create with an unknown template rejects with a 404 error', async () => {
    const name = uniqueName('does-not-exist')
    await assert.rejects(
      Sandbox.create(name, { metadata: SUITE_TAG }).then((s) => {
        tracker.track(s)
        return s
      }),
      (err) => {
        assert.ok(err instanceof SandboxError, `got ${err?.name}: ${err?.message}`)
        assert.ok(!(err instanceof NotFoundError), 'create does not map 404 to NotFoundError')
        assert.match(err.message, /^404: /)
        assert.match(err.message, /not found/i)
        return true
      },
    )
  })

  test('a wrong API key is rejected with AuthenticationError', async () => {
    const bad = { apiKey: BAD_API_KEY }
    const unauthorized = (err) => assert.match(err.message, /^Unauthorized, please check your credentials\./)

    await assert.rejects(
      Sandbox.create({ ...bad, metadata: SUITE_TAG }).then((s) => {
        tracker.track(s)
        return s
      }),
      errorOf(AuthenticationError, unauthorized),
    )
    await assert.rejects(Sandbox.list(bad).nextItems(), errorOf(AuthenticationError, unauthorized))
    await assert.rejects(Sandbox.getInfo(main.sandboxId, bad), errorOf(AuthenticationError))
    await assert.rejects(Sandbox.kill(main.sandboxId, bad), errorOf(AuthenticationError))
    assert.equal(await main.isRunning(), true, 'a rejected kill must not kill')
  })
})
