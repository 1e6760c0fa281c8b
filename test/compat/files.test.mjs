// Files: envd /files (upload/download, signed URLs) and filesystem.Filesystem RPCs.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'

import { FileNotFoundError, InvalidArgumentError, NotFoundError, SandboxError } from 'e2b'

import {
  ENVD_PORT,
  SandboxTracker,
  env,
  errorOf,
  expectErrorBody,
  hashStream,
  hashingPseudoRandomStream,
  readAll,
  sleep,
  uniqueName,
  waitFor,
} from './helpers.mjs'

const HOME = '/home/user'

function streamOf(...parts) {
  const encoder = new TextEncoder()
  return new ReadableStream({
    start(controller) {
      for (const p of parts) controller.enqueue(encoder.encode(p))
      controller.close()
    },
  })
}

function byName(entries) {
  return [...entries].sort((a, b) => a.path.localeCompare(b.path))
}

describe('files', () => {
  const tracker = new SandboxTracker()
  let sbx
  let n = 0
  // A fresh directory per test keeps the shared sandbox from hiding bugs.
  const freshDir = () => `${HOME}/t${++n}-${uniqueName('d')}`

  before(async () => {
    sbx = await tracker.create({ timeoutMs: 300_000 })
  })

  after(() => tracker.killAll())

  test('write and read text (absolute, relative and empty)', async () => {
    const dir = freshDir()
    const path = `${dir}/hello.txt`
    const text = 'héllo wörld ✓\nsecond line\n'

    const info = await sbx.files.write(path, text)
    assert.deepEqual({ ...info }, { name: 'hello.txt', type: 'file', path, metadata: undefined })
    assert.equal(await sbx.files.read(path), text)

    const rel = `${uniqueName('rel')}.txt`
    const relInfo = await sbx.files.write(rel, 'relative')
    assert.equal(relInfo.path, `${HOME}/${rel}`, 'relative paths resolve against the home dir')
    assert.equal(await sbx.files.read(`${HOME}/${rel}`), 'relative')
    assert.equal(await sbx.files.read(rel), 'relative')

    await sbx.files.write(`${dir}/empty.txt`, '')
    assert.equal(await sbx.files.read(`${dir}/empty.txt`), '')
    assert.equal((await sbx.files.getInfo(`${dir}/empty.txt`)).size, 0)
  })

  test('bytes round-trip all 256 byte values', async () => {
    const path = `${freshDir()}/bytes.bin`
    const bytes = new Uint8Array(1024)
    for (let i = 0; i < bytes.length; i++) bytes[i] = i % 256

    await sbx.files.write(path, bytes.buffer)
    const back = await sbx.files.read(path, { format: 'bytes' })
    assert.ok(back instanceof Uint8Array)
    assert.deepEqual(Buffer.from(back), Buffer.from(bytes))

    const sha = createHash('sha256').update(bytes).digest('hex')
    const r = await sbx.commands.run(`wc -c < ${path}; sha256sum ${path}`)
    assert.equal(r.stdout, `1024\n${sha}  ${path}\n`)
  })

  test('read as stream and as blob', async () => {
    const path = `${freshDir()}/formats.txt`
    const content = 'stream and blob ✓\n'.repeat(1000)
    await sbx.files.write(path, content)

    const stream = await sbx.files.read(path, { format: 'stream' })
    assert.ok(stream instanceof ReadableStream)
    assert.equal((await readAll(stream)).toString('utf8'), content)

    const blob = await sbx.files.read(path, { format: 'blob' })
    assert.ok(blob instanceof Blob)
    assert.equal(blob.size, Buffer.byteLength(content))
    assert.equal(await blob.text(), content)
  })

  test('write a ReadableStream (octet-stream upload) and a Blob (multipart upload)', async () => {
    const dir = freshDir()
    const s = await sbx.files.write(`${dir}/from-stream.txt`, streamOf('hello ', 'from ', 'stream'))
    assert.equal(s.path, `${dir}/from-stream.txt`)
    assert.equal(s.type, 'file')
    assert.equal(await sbx.files.read(`${dir}/from-stream.txt`), 'hello from stream')

    const b = await sbx.files.write(`${dir}/from-blob.txt`, new Blob(['blob ', 'data']))
    assert.equal(b.path, `${dir}/from-blob.txt`)
    assert.equal(await sbx.files.read(`${dir}/from-blob.txt`), 'blob data')

    // Overwriting truncates.
    await sbx.files.write(`${dir}/from-blob.txt`, 'x')
    assert.equal(await sbx.files.read(`${dir}/from-blob.txt`), 'x')
  })

  test('multi-file write sends all files in one request', async () => {
    const dir = freshDir()
    const files = [
      { path: `${dir}/one.txt`, data: 'first' },
      { path: `${dir}/nested/deeper/two.txt`, data: new Blob(['second']) },
      { path: `${dir}/three.bin`, data: new Uint8Array([0, 1, 2, 255]).buffer },
    ]
    const infos = await sbx.files.write(files)
    assert.ok(Array.isArray(infos))
    assert.deepEqual(
      byName(infos).map((i) => ({ name: i.name, type: i.type, path: i.path })),
      byName([
        { name: 'one.txt', type: 'file', path: files[0].path },
        { name: 'two.txt', type: 'file', path: files[1].path },
        { name: 'three.bin', type: 'file', path: files[2].path },
      ]),
    )
    assert.equal(await sbx.files.read(files[0].path), 'first')
    assert.equal(await sbx.files.read(files[1].path), 'second')
    assert.deepEqual([...(await sbx.files.read(files[2].path, { format: 'bytes' }))], [0, 1, 2, 255])
  })

  test('list a directory with depth 1 and depth 2', async () => {
    const dir = freshDir()
    await sbx.files.write([
      { path: `${dir}/a.txt`, data: 'abc' },
      { path: `${dir}/sub/b.txt`, data: 'bbbbb' },
    ])

    const one = byName(await sbx.files.list(dir))
    assert.deepEqual(
      one.map((e) => ({ name: e.name, type: e.type, path: e.path })),
      [
        { name: 'a.txt', type: 'file', path: `${dir}/a.txt` },
        { name: 'sub', type: 'dir', path: `${dir}/sub` },
      ],
    )
    assert.equal(one[0].size, 3)
    assert.equal(one[0].owner, 'user')

    const two = byName(await sbx.files.list(dir, { depth: 2 }))
    assert.deepEqual(
      two.map((e) => ({ name: e.name, type: e.type, path: e.path })),
      [
        { name: 'a.txt', type: 'file', path: `${dir}/a.txt` },
        { name: 'sub', type: 'dir', path: `${dir}/sub` },
        { name: 'b.txt', type: 'file', path: `${dir}/sub/b.txt` },
      ],
    )
    assert.equal(two[2].size, 5)

    await assert.rejects(sbx.files.list(`${dir}/missing`), errorOf(FileNotFoundError))
  })

  test('exists and getInfo', async () => {
    const dir = freshDir()
    const path = `${dir}/info.txt`
    const writtenAt = Date.now()
    await sbx.files.write(path, '12345')

    assert.equal(await sbx.files.exists(path), true)
    assert.equal(await sbx.files.exists(dir), true)
    assert.equal(await sbx.files.exists(`${dir}/nope.txt`), false)

    const info = await sbx.files.getInfo(path)
    assert.equal(info.name, 'info.txt')
    assert.equal(info.path, path)
    assert.equal(info.type, 'file')
    assert.equal(info.size, 5)
    assert.equal(info.permissions, '-rw-r--r--')
    assert.equal(info.mode, 0o644)
    assert.equal(info.owner, 'user')
    assert.equal(info.group, 'user')
    assert.equal(info.symlinkTarget, undefined)
    assert.ok(info.modifiedTime instanceof Date, 'modifiedTime is a Date')
    assert.ok(Math.abs(info.modifiedTime.getTime() - writtenAt) < 60_000, `modifiedTime ${info.modifiedTime}`)

    const d = await sbx.files.getInfo(dir)
    assert.equal(d.type, 'dir')
    assert.match(d.permissions, /^d[rwx-]{9}$/)
    assert.equal(d.owner, 'user')

    await assert.rejects(sbx.files.getInfo(`${dir}/nope.txt`), errorOf(FileNotFoundError))
  })

  test('remove files and directories; removing a missing path is not an error', async () => {
    const dir = freshDir()
    await sbx.files.write([
      { path: `${dir}/f.txt`, data: 'f' },
      { path: `${dir}/d/g.txt`, data: 'g' },
    ])
    await sbx.files.remove(`${dir}/f.txt`)
    assert.equal(await sbx.files.exists(`${dir}/f.txt`), false)
    await sbx.files.remove(`${dir}/d`)
    assert.equal(await sbx.files.exists(`${dir}/d`), false)
    await sbx.files.remove(`${dir}/never-existed`)
  })

  test('rename returns the new entry', async () => {
    const dir = freshDir()
    await sbx.files.write(`${dir}/old.txt`, 'moving')
    const entry = await sbx.files.rename(`${dir}/old.txt`, `${dir}/moved/new.txt`)
    assert.equal(entry.name, 'new.txt')
    assert.equal(entry.path, `${dir}/moved/new.txt`)
    assert.equal(entry.type, 'file')
    assert.equal(entry.size, 6)
    assert.equal(await sbx.files.exists(`${dir}/old.txt`), false)
    assert.equal(await sbx.files.read(`${dir}/moved/new.txt`), 'moving')

    await assert.rejects(
      sbx.files.rename(`${dir}/old.txt`, `${dir}/again.txt`),
      errorOf(FileNotFoundError),
    )
  })

  test('makeDir returns true when created and false when it exists', async () => {
    const dir = `${freshDir()}/x/y/z`
    assert.equal(await sbx.files.makeDir(dir), true)
    assert.equal(await sbx.files.makeDir(dir), false)
    const info = await sbx.files.getInfo(dir)
    assert.equal(info.type, 'dir')
    assert.equal(info.owner, 'user')

    await sbx.files.write(`${dir}/file.txt`, 'f')
    await assert.rejects(sbx.files.makeDir(`${dir}/file.txt`), errorOf(InvalidArgumentError))
  })

  test('watchDir reports create and write events with relative names', async () => {
    const dir = freshDir()
    await sbx.files.makeDir(dir)
    const events = []
    const handle = await sbx.files.watchDir(dir, (e) => events.push(e), { recursive: true })
    let stopped = false
    try {
      await sbx.files.makeDir(`${dir}/sub`)
      // Give the recursive watcher a moment to add the new directory.
      await sleep(300)
      await sbx.files.write(`${dir}/sub/f.txt`, 'watched')

      const has = (name, type) => events.some((e) => e.name === name && e.type === type)
      await waitFor(() => has('sub/f.txt', 'write'), {
        timeoutMs: 10_000,
        message: () => `write event for sub/f.txt (got ${JSON.stringify(events)})`,
      })
      assert.ok(has('sub', 'create'), `create event for sub (got ${JSON.stringify(events)})`)
      assert.ok(has('sub/f.txt', 'create'), `create event for sub/f.txt (got ${JSON.stringify(events)})`)
      for (const e of events) {
        assert.ok(!e.name.startsWith('/'), `event names are relative: ${e.name}`)
        assert.equal(e.entry, undefined, 'no entry unless includeEntry')
      }

      await handle.stop()
      stopped = true
      await sleep(300)
      const count = events.length
      await sbx.files.write(`${dir}/after-stop.txt`, 'x')
      await sleep(1_000)
      assert.equal(events.length, count, 'no events after stop()')
    } finally {
      if (!stopped) await handle.stop()
    }
  })

  test('100 MB upload and download round-trip (streamed)', { timeout: 170_000 }, async () => {
    const size = 100 * 1024 * 1024
    const path = `${freshDir()}/big.bin`
    const src = hashingPseudoRandomStream(0xa1b2c3d4, size)

    const info = await sbx.files.write(path, src.stream)
    const want = src.digest()
    assert.equal(info.path, path)
    assert.equal((await sbx.files.getInfo(path)).size, size)

    const inside = await sbx.commands.run(`sha256sum ${path}`, { timeoutMs: 60_000 })
    assert.equal(inside.stdout, `${want}  ${path}\n`, 'hash computed inside the sandbox')

    const down = await hashStream(await sbx.files.read(path, { format: 'stream' }))
    assert.equal(down.bytes, size)
    assert.equal(down.sha256, want)
    await sbx.files.remove(path)
  })

  test('reading a missing file rejects with FileNotFoundError', async () => {
    await assert.rejects(
      sbx.files.read(`${HOME}/${uniqueName('missing')}.txt`),
      errorOf(FileNotFoundError, (err) => {
        assert.ok(err instanceof NotFoundError)
        assert.ok(err instanceof SandboxError)
      }),
    )
  })

  test('path traversal stays inside the sandbox', async () => {
    const name = `${uniqueName('trav')}.txt`
    const info = await sbx.files.write(`${HOME}/../../tmp/${name}`, 'inside')
    assert.equal(info.path, `/tmp/${name}`)
    assert.equal((await sbx.commands.run(`cat /tmp/${name}`)).stdout, 'inside')
    assert.equal(existsSync(`/tmp/${name}`), false, `/tmp/${name} leaked onto the host`)

    // Relative paths resolve against the home dir and are cleaned the same way.
    const name2 = `${uniqueName('trav')}.txt`
    const info2 = await sbx.files.write(`../../../../../tmp/${name2}`, 'inside too')
    assert.equal(info2.path, `/tmp/${name2}`)
    assert.equal(await sbx.files.read(`/tmp/${name2}`), 'inside too')
    assert.equal(existsSync(`/tmp/${name2}`), false, `/tmp/${name2} leaked onto the host`)
  })

  describe('signed URLs', () => {
    const routing = () => ({ 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': ENVD_PORT })
    const tamper = (url) => {
      const u = new URL(url)
      const sig = u.searchParams.get('signature')
      const last = sig.at(-1) === 'A' ? 'B' : 'A'
      u.searchParams.set('signature', sig.slice(0, -1) + last)
      return u.toString()
    }

    test('downloadUrl is signed and works with plain fetch plus routing headers', async () => {
      const path = `${freshDir()}/download.txt`
      await sbx.files.write(path, 'signed download ✓')

      const url = await sbx.downloadUrl(path)
      assert.ok(url.startsWith(`${env.sandboxUrl}/files?`), `url ${url}`)
      assert.ok(url.includes('signature=v1_'), `url ${url}`)
      const u = new URL(url)
      assert.equal(u.searchParams.get('path'), path)
      assert.match(u.searchParams.get('signature'), /^v1_[A-Za-z0-9+/]{43}$/)
      // The host alone cannot route it (E2B_SANDBOX_URL has no sandbox id), so add the headers.
      const res = await fetch(url, { headers: routing() })
      assert.equal(res.status, 200)
      assert.equal(await res.text(), 'signed download ✓')

      await expectErrorBody(await fetch(tamper(url), { headers: routing() }), 401)

      const unsigned = new URL(url)
      unsigned.searchParams.delete('signature')
      await expectErrorBody(await fetch(unsigned, { headers: routing() }), 401)
    })

    test('signature expiration is honoured', async () => {
      const path = `${freshDir()}/expiring.txt`
      await sbx.files.write(path, 'expiring')

      const fresh = await sbx.downloadUrl(path, { useSignatureExpiration: 120 })
      assert.ok(new URL(fresh).searchParams.get('signature_expiration'))
      const ok = await fetch(fresh, { headers: routing() })
      assert.equal(ok.status, 200)
      assert.equal(await ok.text(), 'expiring')

      const expired = await sbx.downloadUrl(path, { useSignatureExpiration: -60 })
      await expectErrorBody(await fetch(expired, { headers: routing() }), 401)
    })

    test('as root, and every tampered part of a signed URL gets 401, never 404', async () => {
      const path = `${freshDir()}/root-only.txt`
      await sbx.files.write(path, 'root secret', { user: 'root' })
      await sbx.commands.run(`chmod 600 ${path}`, { user: 'root' })
      const url = await sbx.downloadUrl(path, { user: 'root', useSignatureExpiration: 300 })
      assert.equal(new URL(url).searchParams.get('username'), 'root')
      const ok = await fetch(url, { headers: routing() })
      assert.equal(ok.status, 200)
      assert.equal(await ok.text(), 'root secret')

      const variants = {
        'another path': (u) => u.searchParams.set('path', `${path}.other`),
        'a missing file': (u) => u.searchParams.set('path', '/nonexistent/file'),
        'another user': (u) => u.searchParams.set('username', 'user'),
        'no user': (u) => u.searchParams.delete('username'),
        'a later expiry': (u) => u.searchParams.set('signature_expiration', String(Number(u.searchParams.get('signature_expiration')) + 3600)),
        'no expiry': (u) => u.searchParams.delete('signature_expiration'),
        'a non-numeric expiry': (u) => u.searchParams.set('signature_expiration', 'soon'),
        'an empty signature': (u) => u.searchParams.set('signature', ''),
        'a v2 prefix': (u) => u.searchParams.set('signature', u.searchParams.get('signature').replace(/^v1_/, 'v2_')),
      }
      for (const [name, change] of Object.entries(variants)) {
        const u = new URL(url)
        change(u)
        const res = await fetch(u, { headers: routing() })
        assert.equal(res.status, 401, `${name}: ${res.status}`)
        await expectErrorBody(res, 401)
      }
      // An expired signature for a file that does not exist is still 401.
      const gone = await sbx.downloadUrl('/nonexistent/file', { user: 'root', useSignatureExpiration: -1 })
      await expectErrorBody(await fetch(gone, { headers: routing() }), 401)
      // ...while a valid one for a missing file says 404.
      const missing = await sbx.downloadUrl('/nonexistent/file', { user: 'root', useSignatureExpiration: 60 })
      assert.equal((await fetch(missing, { headers: routing() })).status, 404)

      const up = await sbx.uploadUrl(`${freshDir()}/root-upload.txt`, { user: 'root', useSignatureExpiration: 60 })
      const form = new FormData()
      form.append('file', new Blob(['by root']), 'root-upload.txt')
      const res = await fetch(up, { method: 'POST', body: form, headers: routing() })
      assert.equal(res.status, 200)
      const [entry] = await res.json()
      const owner = await sbx.commands.run(`stat -c %U ${entry.path}`)
      assert.equal(owner.stdout.trim(), 'root')
      const expiredUp = await sbx.uploadUrl(`${freshDir()}/late.txt`, { user: 'root', useSignatureExpiration: -5 })
      const form2 = new FormData()
      form2.append('file', new Blob(['late']), 'late.txt')
      await expectErrorBody(await fetch(expiredUp, { method: 'POST', body: form2, headers: routing() }), 401)
    })

    test('uploadUrl accepts a multipart POST; a tampered signature gets 401', async () => {
      const path = `${freshDir()}/upload.txt`
      const url = await sbx.uploadUrl(path)
      assert.ok(url.includes('signature=v1_'), `url ${url}`)

      const form = new FormData()
      form.append('file', new Blob(['uploaded via signed url']), 'upload.txt')
      const res = await fetch(url, { method: 'POST', body: form, headers: routing() })
      assert.equal(res.status, 200)
      const body = await res.json()
      assert.ok(Array.isArray(body) && body.length === 1, `body ${JSON.stringify(body)}`)
      assert.equal(body[0].path, path)
      assert.equal(body[0].name, 'upload.txt')
      assert.equal(body[0].type, 'file')
      assert.equal(await sbx.files.read(path), 'uploaded via signed url')

      const form2 = new FormData()
      form2.append('file', new Blob(['evil']), 'upload.txt')
      await expectErrorBody(
        await fetch(tamper(url), { method: 'POST', body: form2, headers: routing() }),
        401,
      )
      assert.equal(await sbx.files.read(path), 'uploaded via signed url', 'rejected upload wrote nothing')

      // A read signature must not authorise a write.
      const readSigned = new URL(await sbx.downloadUrl(path))
      const form3 = new FormData()
      form3.append('file', new Blob(['evil']), 'upload.txt')
      await expectErrorBody(
        await fetch(readSigned, { method: 'POST', body: form3, headers: routing() }),
        401,
      )
    })
  })
})
