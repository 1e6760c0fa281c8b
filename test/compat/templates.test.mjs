// Template builds through the unmodified SDK's build API (Template(),
// Template.build, tags, exists, build status), and sandboxes from the result.

import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'

import { BuildError, Sandbox, Template, waitForFile, waitForPort } from 'e2b'

import { apiFetch, env, killQuietly, uniqueName } from './helpers.mjs'

const otherKey = process.env.E2B_API_KEY_OTHER_TEAM
if (!otherKey) {
  throw new Error('template tests need E2B_API_KEY_OTHER_TEAM: a key of a second team (airlock keys create --team other)')
}

// The loopback registry scripts/test.sh runs (test/registry).
const registry = process.env.AIRLOCK_TEST_REGISTRY
if (!registry) {
  throw new Error('template tests need AIRLOCK_TEST_REGISTRY: the host:port of test/registry, which the server lists in --registry-insecure')
}

const built = []
const ctxDir = mkdtempSync(join(tmpdir(), 'airlock-tpl-'))
mkdirSync(join(ctxDir, 'folder', 'sub'), { recursive: true })
writeFileSync(join(ctxDir, 'folder', 'a.txt'), 'alpha\n')
writeFileSync(join(ctxDir, 'folder', 'sub', 'b.txt'), 'beta\n')
writeFileSync(join(ctxDir, 'folder', 'skip.md'), 'not a txt\n')
writeFileSync(join(ctxDir, 'run.sh'), '#!/bin/sh\necho from-script\n')
symlinkSync('a.txt', join(ctxDir, 'folder', 'link.txt'))
symlinkSync('/etc/hostname', join(ctxDir, 'folder', 'abs.txt'))

after(async () => {
  rmSync(ctxDir, { recursive: true, force: true })
  for (const name of built) {
    await apiFetch(`/templates/${encodeURIComponent(name)}`, { method: 'DELETE' }).catch(() => {})
  }
})

async function build(template, name, opts = {}) {
  built.push(name.split(':')[0])
  const logs = []
  const info = await Template.build(template, name, { cpuCount: 1, memoryMB: 512, ...opts, onBuildLogs: (e) => logs.push(e.message) })
  return { info, logs }
}

async function run(sbx, cmd, opts) {
  const r = await sbx.commands.run(cmd, opts)
  return r.stdout.trim()
}

describe('template builds', { concurrency: true }, () => {
  test('a template from base: copy, env, run as users, workdir, start and ready commands', async () => {
    const name = uniqueName('tpl-full')
    const template = Template({ fileContextPath: ctxDir })
      .fromTemplate('base')
      .copy('folder/*.txt', 'txt/')
      .copy('folder', '/opt/folder', { mode: 0o640, user: 'root' })
      .copy('run.sh', '/usr/local/bin/hello', { mode: 0o755 })
      .copy('folder/link.txt', '/home/user/resolved.txt', { resolveSymlinks: true })
      .setEnvs({ GREETING: 'hi there', PATH: '/opt/tools:$PATH' })
      .runCmd('echo "$GREETING from $(whoami) in $(pwd)" > /home/user/ran.txt')
      .runCmd('touch /root/by-root && test "$(whoami)" = root', { user: 'root' })
      .makeDir('/srv/data', { user: 'root' })
      .makeSymlink('/srv/data', '/home/user/data-link', { user: 'root' })
      .runCmd('echo gone > /tmp/x && echo moved > /tmp/y')
      .remove('/tmp/x')
      .rename('/tmp/y', '/tmp/z')
      .setWorkdir('/app')
      .runCmd('pwd > where.txt')
      .setStartCmd('sleep 1 && echo started > /tmp/started && sleep infinity', waitForFile('/tmp/started'))
    const { info, logs } = await build(template, name)
    assert.ok(info.templateId && info.buildId, 'build info has IDs')
    assert.ok(logs.some((l) => l.includes('RUN')), `the build log names the steps: ${logs.join(' | ')}`)
    assert.equal(await Template.exists(name), true)

    const sbx = await Sandbox.create(name, { timeoutMs: 120_000 })
    try {
      assert.equal(await run(sbx, 'cat /home/user/txt/a.txt'), 'alpha')
      assert.equal(await run(sbx, 'ls /home/user/txt'), 'a.txt\nabs.txt\nlink.txt', 'the glob took only the .txt files in folder/')
      assert.equal(await run(sbx, 'readlink /home/user/txt/link.txt'), 'a.txt', 'a symlink stays a symlink')
      // (A dangling one the pinned SDK cannot hash: it stats the target.)
      assert.equal(await run(sbx, 'readlink /home/user/txt/abs.txt'), '/etc/hostname', 'an absolute symlink is kept as it is')
      assert.equal(await run(sbx, 'stat -c "%a %U" /opt/folder/a.txt /opt/folder/sub/b.txt', { user: 'root' }), '640 root\n640 root')
      assert.equal(await run(sbx, 'stat -c "%U" /home/user/txt/a.txt'), 'user', 'COPY files belong to the build user')
      assert.equal(await run(sbx, 'hello'), 'from-script')
      assert.equal(await run(sbx, 'test -L /home/user/resolved.txt && echo link; cat /home/user/resolved.txt'), 'alpha', 'resolveSymlinks copies the target')
      assert.equal(await run(sbx, 'cat /home/user/ran.txt'), 'hi there from user in /home/user')
      assert.equal(await run(sbx, 'ls /root/by-root', { user: 'root' }), '/root/by-root')
      assert.equal(await run(sbx, 'readlink /home/user/data-link && test -d /srv/data && echo dir'), '/srv/data\ndir')
      assert.equal(await run(sbx, 'ls /tmp/x 2>&1; cat /tmp/z'), 'ls: cannot access \'/tmp/x\': No such file or directory\nmoved')
      assert.equal(await run(sbx, 'cat /app/where.txt'), '/app')
      // The sandbox gets the template's env, workdir and started command.
      assert.equal(await run(sbx, 'echo "$GREETING|$PATH|$(pwd)|$(whoami)"'), 'hi there|/opt/tools:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/app|user')
      assert.equal(await run(sbx, 'cat /tmp/started'), 'started', 'create returned after the ready command passed')
      const envs = await run(sbx, 'echo $GREETING', { envs: { GREETING: 'own' } })
      assert.equal(envs, 'own', "a command's env wins over the template's")
    } finally {
      await killQuietly(sbx)
    }
  })

  test('an unchanged rebuild reuses the tree; skipCache builds again', async () => {
    const name = uniqueName('tpl-cache')
    const t = (force = false) => {
      const b = Template().fromTemplate('base')
      // skipCache applies to the steps after it.
      return (force ? b.skipCache() : b).runCmd('date +%s%N > /home/user/stamp')
    }
    await build(t(), name)
    const { logs } = await build(t(), name)
    assert.ok(logs.some((l) => l.includes('CACHED')), `a rebuild says it is cached: ${logs.join(' | ')}`)
    const sbx = await Sandbox.create(name)
    const first = await run(sbx, 'cat stamp')
    await killQuietly(sbx)
    const forced = await build(t(true), name)
    assert.ok(!forced.logs.some((l) => l.includes('CACHED')), 'skipCache is not cached')
    const sbx2 = await Sandbox.create(name)
    try {
      assert.notEqual(await run(sbx2, 'cat stamp'), first, 'the forced build ran the step again')
    } finally {
      await killQuietly(sbx2)
    }
  })

  test('a failing command fails the build with its command, exit code and output; nothing is registered', async () => {
    const name = uniqueName('tpl-fail')
    const template = Template().fromTemplate('base').runCmd('echo about to fail >&2; exit 3')
    await assert.rejects(build(template, name), (err) => {
      assert.ok(err instanceof BuildError, `BuildError, got ${err?.constructor?.name}`)
      assert.match(err.message, /failed to run command 'echo about to fail >&2; exit 3': exit status 3/)
      assert.match(err.message, /about to fail/)
      return true
    })
    assert.equal(await Template.exists(name), false, 'a template whose only build failed does not exist')
  })

  test("a command as a user the image lacks fails with E2B's message", async () => {
    const template = Template().fromTemplate('base').skipCache().runCmd('whoami', { user: 'root123' })
    await assert.rejects(build(template, uniqueName('tpl-user')), (err) => {
      assert.match(err.message, /failed to run command 'whoami': command failed: unauthenticated: invalid username: 'root123'/)
      return true
    })
  })

  test('bad bases and a start command that fails are build errors', async () => {
    await assert.rejects(build(Template().fromTemplate('no-such-template-here'), uniqueName('tpl-base')), /base template "no-such-template-here" not found/)
    // A registry on a private address the operator did not list: refused
    // before any connection (tenants must not reach the host's network).
    await assert.rejects(build(Template().fromImage('127.0.0.1:1/nothing:1'), uniqueName('tpl-img')), /private network/)
    await assert.rejects(build(Template().fromImage(`${registry}/airlock/missing:1`), uniqueName('tpl-img')), /image ".*airlock\/missing:1" not found/)
    const started = Template().fromTemplate('base').setStartCmd('./nonexistent/path', waitForPort(9))
    await assert.rejects(build(started, uniqueName('tpl-start')), /start command exited with status 127/)
  })

  test('tags: build name:tag, assign, list, create from a tag, remove; bad formats', async () => {
    const name = uniqueName('tpl-tags')
    const { info } = await build(Template().fromTemplate('base').runCmd('echo v1 > /home/user/version'), `${name}:v1`)
    await build(Template().fromTemplate('base').runCmd('echo v2 > /home/user/version'), `${name}:v2`)
    const assigned = await Template.assignTags(`${name}:v1`, ['production', `${name}:stable`])
    assert.equal(assigned.buildId, info.buildId)
    assert.deepEqual([...assigned.tags].sort(), ['production', 'stable'])
    const tags = await Template.getTags(info.templateId)
    const byTag = Object.fromEntries(tags.map((t) => [t.tag, t.buildId]))
    assert.equal(byTag.production, info.buildId)
    assert.ok(byTag.v2 && byTag.v2 !== info.buildId)
    assert.equal(byTag.default, byTag.v2, 'the newest build is the default')
    for (const [ref, want] of [[`${name}:production`, 'v1'], [`${name}:v2`, 'v2'], [name, 'v2']]) {
      const sbx = await Sandbox.create(ref)
      try {
        assert.equal(await run(sbx, 'cat version'), want, ref)
      } finally {
        await killQuietly(sbx)
      }
    }
    await Template.removeTags(name, 'production')
    await assert.rejects(Sandbox.create(`${name}:production`), /not found/)
    await assert.rejects(Template.assignTags(`${name}:v1`, ':invalid-tag'))
    await assert.rejects(Template.assignTags(`${name}:v1`, `${name}:`))
    await assert.rejects(Template.removeTags('no-such-template-x', ['tag']))
  })

  test("another team can neither use nor take a team's template name", async () => {
    const name = uniqueName('tpl-team')
    await build(Template().fromTemplate('base'), name)
    // As on E2B: the alias answers 403, which exists reads as "taken".
    assert.equal(await Template.exists(name, { apiKey: otherKey }), true)
    const alias = await fetch(`${env.apiUrl}/templates/aliases/${name}`, { headers: { 'X-API-KEY': otherKey } })
    assert.equal(alias.status, 403)
    await assert.rejects(Template.build(Template().fromTemplate('base'), name, { apiKey: otherKey }), /taken by another team/)
    await assert.rejects(Sandbox.create(name, { apiKey: otherKey }), /not found/)
    // Nor can it read the build's status or upload into it.
    const res = await fetch(`${env.apiUrl}/templates/${name}/tags`, { headers: { 'X-API-KEY': otherKey } })
    assert.equal(res.status, 404)
  })

  test('a template from an OCI image: layers flattened, ENV kept, E2B user added; private images need credentials', async () => {
    const name = uniqueName('tpl-image')
    const t = Template().fromImage(`${registry}/airlock/test:1`)
      .runCmd('echo "$IMAGE_VAR as $(whoami) in $(pwd)" > from-image.txt')
      .runCmd('test "$(whoami)" = root', { user: 'root' })
    const { logs } = await build(t, name)
    assert.ok(logs.some((l) => /Pulling|cached/.test(l)), `the log tells of the pull: ${logs.join(' | ')}`)
    const sbx = await Sandbox.create(name, { timeoutMs: 120_000 })
    try {
      assert.equal(await run(sbx, 'cat from-image.txt'), 'from-image as user in /home/user')
      assert.equal(await run(sbx, 'cat /etc/airlock-image'), 'from the test registry')
      assert.equal(await run(sbx, 'test -e /etc/motd && echo there || echo gone'), 'gone', "the upper layer's whiteout removed it")
      assert.equal(await run(sbx, 'echo $IMAGE_VAR; whoami; sudo -n whoami'), 'from-image\nuser\nroot')
      await sbx.files.write('/home/user/w.txt', 'written')
      assert.equal(await sbx.files.read('/home/user/w.txt'), 'written')
    } finally {
      await killQuietly(sbx)
    }
    await assert.rejects(build(Template().fromImage(`${registry}/private/test:1`), uniqueName('tpl-priv')), /refused access/)
    await assert.rejects(build(Template().fromImage(`${registry}/private/test:1`, { username: 'airlock', password: 'wrong' }), uniqueName('tpl-priv')), /refused access/)
    const priv = uniqueName('tpl-priv')
    await build(Template().fromImage(`${registry}/private/test:1`, { username: 'airlock', password: 'registry-test' }).runCmd('cat /etc/airlock-image'), priv)
    assert.equal(await Template.exists(priv), true)
  })

  test('buildInBackground and getBuildStatus', async () => {
    const name = uniqueName('tpl-bg')
    built.push(name)
    const info = await Template.buildInBackground(Template().fromTemplate('base').runCmd('sleep 1; echo bg-done'), name, { cpuCount: 1, memoryMB: 512 })
    let status
    let offset = 0
    const messages = []
    for (let i = 0; i < 600; i++) {
      status = await Template.getBuildStatus(info, { logsOffset: offset })
      offset += status.logEntries.length
      messages.push(...status.logEntries.map((e) => e.message))
      if (status.status === 'ready' || status.status === 'error') break
      await new Promise((r) => setTimeout(r, 500))
    }
    assert.equal(status.status, 'ready')
    assert.ok(messages.some((m) => m.includes('bg-done')), `the step's output is in the log: ${messages.join(' | ')}`)
  })
})

describe('template build API edges', () => {
  test('bad names, unknown builds and uploads without a valid link', async () => {
    let res = await apiFetch('/v3/templates', { method: 'POST', body: JSON.stringify({ name: 'Bad Name' }), headers: { 'Content-Type': 'application/json' } })
    assert.equal(res.status, 400)
    assert.equal((await res.json()).code, 400)
    res = await apiFetch('/templates/nosuchtemplate/builds/nosuchbuild/status')
    assert.equal(res.status, 404)
    res = await apiFetch('/v3/templates', { method: 'POST', body: JSON.stringify({ name: uniqueName('tpl-edge') }), headers: { 'Content-Type': 'application/json' } })
    assert.equal(res.status, 202)
    const req = await res.json()
    built.push(req.names[0])
    const hash = 'a'.repeat(64)
    res = await apiFetch(`/templates/${req.templateID}/files/${hash}`)
    assert.equal(res.status, 201)
    const link = await res.json()
    assert.equal(link.present, false)
    res = await fetch(link.url.replace(/token=[^&]+/, 'token=forged'), { method: 'PUT', body: 'x'.repeat(1024) })
    assert.equal(res.status, 403)
    res = await fetch(link.url, { method: 'PUT', body: 'not a tar archive at all'.repeat(40) })
    assert.equal(res.status, 400)
    res = await apiFetch(`/templates/${req.templateID}/files/not-a-hash`)
    assert.equal(res.status, 400)
    // A COPY of files never uploaded fails that step.
    res = await apiFetch(`/v2/templates/${req.templateID}/builds/${req.buildID}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ fromTemplate: 'base', steps: [{ type: 'COPY', args: ['x', '/x', '', ''], filesHash: hash }] }),
    })
    assert.equal(res.status, 202)
    let st
    for (let i = 0; i < 100; i++) {
      st = await (await apiFetch(`/templates/${req.templateID}/builds/${req.buildID}/status`)).json()
      if (st.status === 'error' || st.status === 'ready') break
      await new Promise((r) => setTimeout(r, 200))
    }
    assert.equal(st.status, 'error')
    assert.equal(st.reason.step, '1')
    assert.match(st.reason.message, /never uploaded/)
    res = await apiFetch(`/v2/templates/${req.templateID}/builds/${req.buildID}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ fromTemplate: 'base' }),
    })
    assert.equal(res.status, 409, 'a build starts once')
  })
})
