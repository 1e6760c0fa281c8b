// The last mile of the core: behaviours E2B users notice, through the npm `e2b` SDK.

import assert from 'node:assert/strict'
import { request } from 'node:http'
import { after, before, describe, test } from 'node:test'

import { InvalidArgumentError, Sandbox, SandboxError } from 'e2b'

import { SandboxTracker, apiFetch, env, errorOf, expectErrorBody, uniqueName, waitFor } from './helpers.mjs'

const HOME = '/home/user'

/** GET through the sandbox URL with the Host header the SDK's getHost() gives, as a browser on this machine sends it. */
function getByHost(host, path = '/') {
  const target = new URL(env.sandboxUrl)
  return new Promise((resolve, reject) => {
    const req = request(
      { host: target.hostname, port: target.port, path, headers: { host } },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode, body }))
      },
    )
    req.on('error', reject)
    req.end()
  })
}

describe('core: the last mile', () => {
  const tracker = new SandboxTracker()
  let sbx

  before(async () => {
    sbx = await tracker.create({ timeoutMs: 300_000 })
  })

  after(() => tracker.killAll())

  test('base answers python, pip, curl, git, sudo and a C toolchain by name', async () => {
    for (const cmd of [
      'python --version',
      'python3 --version',
      'pip --version',
      'pip3 --version',
      'curl --version',
      'git --version',
      'sudo -n true',
      'gcc --version',
      'make --version',
      'jq --version',
      "python -c 'import sysconfig, os; assert os.path.exists(sysconfig.get_paths()[\"include\"] + \"/Python.h\")'",
    ]) {
      const r = await sbx.commands.run(cmd)
      assert.equal(r.exitCode, 0, `${cmd}: ${r.stderr}`)
    }
    // pip installs without --break-system-packages (no network needed: a local package).
    const pkg = `${HOME}/${uniqueName('pkg')}`
    await sbx.files.write(`${pkg}/pyproject.toml`, '[project]\nname = "airlockprobe"\nversion = "1.0"\n')
    await sbx.files.write(`${pkg}/airlockprobe.py`, 'X = 42\n')
    const pip = await sbx.commands.run(`pip install --no-build-isolation --no-index -q ${pkg}`, { timeoutMs: 120_000 })
    assert.equal(pip.exitCode, 0, pip.stderr)
    const imp = await sbx.commands.run(`cd / && python -c 'import airlockprobe; print(airlockprobe.X)'`)
    assert.equal(imp.stdout.trim(), '42')
  })

  test('python -m http.server is reachable at the URL getHost() gives', async () => {
    const page = uniqueName('page')
    await sbx.files.write(`${HOME}/www/index.html`, page)
    const server = await sbx.commands.run('cd ~/www && python -m http.server 8000', { background: true })
    try {
      const host = sbx.getHost(8000)
      assert.equal(host, `8000-${sbx.sandboxId}.localhost:${new URL(env.apiUrl).port}`)
      const res = await waitFor(
        async () => {
          const r = await getByHost(host)
          return r.status === 200 ? r : null
        },
        { timeoutMs: 20_000, message: 'http.server answers' },
      )
      assert.equal(res.body, page)
    } finally {
      await server.kill()
    }
  })

  test('create carries the server sandbox domain, never E2B cloud', async () => {
    const res = await apiFetch(`/sandboxes/${sbx.sandboxId}`)
    assert.equal(res.status, 200)
    const info = await res.json()
    assert.equal(info.domain, `localhost:${new URL(env.apiUrl).port}`)
    assert.equal(sbx.sandboxDomain, info.domain)
    assert.doesNotMatch(sbx.getHost(3000), /e2b\.(app|dev)/)
  })

  test('files.write with relative, absolute and nested paths in one request', async () => {
    const dir = uniqueName('rel')
    const abs = `${HOME}/${uniqueName('abs')}.txt`
    const infos = await sbx.files.write([
      { path: `${dir}/a.txt`, data: 'A' },
      { path: `${dir}/sub/b.txt`, data: 'B' },
      { path: abs, data: 'C' },
    ])
    assert.deepEqual(
      infos.map((i) => i.path).sort(),
      [`${HOME}/${dir}/a.txt`, `${HOME}/${dir}/sub/b.txt`, abs].sort(),
    )
    assert.equal(await sbx.files.read(`${HOME}/${dir}/a.txt`), 'A')
    assert.equal(await sbx.files.read(`${dir}/sub/b.txt`), 'B')
    assert.equal(await sbx.files.read(abs), 'C')
    // Written as the user, not root.
    const owner = await sbx.commands.run(`stat -c %U ${HOME}/${dir}/sub/b.txt ${HOME}/${dir}/sub`)
    assert.equal(owner.stdout.trim(), 'user\nuser')
  })

  test('file metadata: set on write, cleared by an overwrite without it, read from xattrs', async () => {
    const p = `${HOME}/${uniqueName('meta')}.txt`
    const info = await sbx.files.write(p, 'x', { metadata: { Owner: 'a', k2: 'v 2' } })
    assert.deepEqual(info.metadata, { owner: 'a', k2: 'v 2' })
    assert.deepEqual((await sbx.files.getInfo(p)).metadata, { owner: 'a', k2: 'v 2' })
    await sbx.files.write(p, 'y')
    assert.deepEqual((await sbx.files.getInfo(p)).metadata ?? {}, {})
    const set = await sbx.commands.run(`python -c "import os; os.setxattr('${p}', 'user.e2b.color', b'blue')"`)
    assert.equal(set.exitCode, 0, set.stderr)
    assert.deepEqual((await sbx.files.getInfo(p)).metadata, { color: 'blue' })
    const listed = (await sbx.files.list(HOME)).find((e) => e.path === p)
    assert.deepEqual(listed.metadata, { color: 'blue' })
  })

  test('files.write of an empty list writes nothing and returns []', async () => {
    assert.deepEqual(await sbx.files.write([]), [])
  })

  test('files.write naming one path twice (relative and absolute) is a 400, as E2B envd answers', async () => {
    const p = uniqueName('dup')
    await assert.rejects(
      sbx.files.write([
        { path: `${p}.txt`, data: '1' },
        { path: `${HOME}/${p}.txt`, data: '2' },
      ]),
      errorOf(InvalidArgumentError, (e) => assert.match(e.message, /more than once/)),
    )
    // As in E2B's envd the parts are written in order until the repeated one.
    assert.equal(await sbx.files.read(`${p}.txt`), '1')
  })

  for (const [field, opts] of [
    ['mcp', { mcp: { exa: { apiKey: 'x' } } }],
    ['volumeMounts', { volumeMounts: { '/data': 'vol' } }],
  ]) {
    test(`create with ${field} is refused with 400 naming it`, async () => {
      await assert.rejects(
        Sandbox.create({ ...opts, timeoutMs: 60_000, metadata: { suite: 'airlock-compat' } }),
        (e) => {
          assert.ok(e instanceof SandboxError, `${e?.constructor?.name}: ${e?.message}`)
          assert.match(e.message, new RegExp(`400.*${field}|${field}.*not supported`))
          return true
        },
      )
    })
  }

  test('create with iam is refused with the E2B error body naming it', async () => {
    const res = await apiFetch('/sandboxes', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ templateID: 'base', iam: { roles: ['x'] } }),
    })
    const body = await expectErrorBody(res, 400)
    assert.match(body.message, /iam/)
  })

  test('getMetrics keeps a 5 s history and filters by start and end', { timeout: 60_000 }, async () => {
    const fresh = await tracker.create({ timeoutMs: 120_000 })
    await fresh.commands.run('sleep 11')
    const all = await fresh.getMetrics()
    assert.ok(all.length >= 2, `${all.length} points after 11 s`)
    const secs = all.map((m) => m.timestamp.getTime() / 1000)
    for (const [i, s] of secs.entries()) {
      assert.equal(s % 5, 0, `timestamp ${s} not on the 5 s grid`)
      if (i > 0) assert.ok(s > secs[i - 1], 'timestamps increase')
    }
    for (const m of all) {
      assert.equal(m.cpuCount, 2)
      assert.ok(m.memUsed > 0 && m.memUsed <= m.memTotal && m.diskTotal > 0)
    }
    // A range inside the first bucket returns just that point (bucket alignment).
    const first = all[0].timestamp
    const one = await fresh.getMetrics({ start: new Date(first.getTime() + 1000), end: new Date(first.getTime() + 3000) })
    assert.deepEqual(one.map((m) => m.timestamp.getTime()), [first.getTime()])
    // Before the sandbox existed: nothing.
    assert.deepEqual(await fresh.getMetrics({ start: new Date(first.getTime() - 3_600_000), end: new Date(first.getTime() - 60_000) }), [])
    // From the second point on.
    const later = await fresh.getMetrics({ start: all[1].timestamp })
    assert.equal(later[0].timestamp.getTime(), all[1].timestamp.getTime())
  })

  test('E2B routes not served yet answer 501 with the E2B body, and the SDK reports it', async () => {
    for (const [method, path] of [
      ['POST', `/sandboxes/${sbx.sandboxId}/fork`],
      ['GET', '/snapshots'],
      ['GET', '/volumes'],
    ]) {
      const res = await apiFetch(path, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined })
      await expectErrorBody(res, 501)
    }
    await assert.rejects(sbx.createSnapshot(), (e) => {
      assert.ok(e instanceof SandboxError, `${e?.constructor?.name}: ${e?.message}`)
      assert.doesNotMatch(e.constructor.name, /NotFound/)
      assert.match(e.message, /501|not (supported|implemented)/i)
      return true
    })
  })
})
