// Every port Airlock itself serves in a sandbox checks the sandbox's access
// token; user ports stay public unless allowPublicTraffic is false.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { createSandbox, killQuietly } from './helpers.mjs'

const base = process.env.E2B_SANDBOX_URL

/** POSTs /execute straight through the gateway, as an outsider who knows the ID would. */
async function rawExecute(sandboxId, code, headers = {}) {
  const res = await fetch(`${base}/execute`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'E2b-Sandbox-Id': sandboxId, 'E2b-Sandbox-Port': '49999', ...headers },
    body: JSON.stringify({ code }),
  })
  return { status: res.status, body: await res.text() }
}

describe('code interpreter authentication', () => {
  let sbx
  before(async () => {
    sbx = await createSandbox()
  })
  after(() => killQuietly(sbx))

  test('POST /execute without the token is refused and runs nothing', async () => {
    const marker = '/tmp/pwned-' + Date.now()
    const code = `open(${JSON.stringify(marker)}, "w").write("x")`
    for (const headers of [{}, { 'X-Access-Token': 'wrong' }, { 'X-Access-Token': '' }]) {
      const r = await rawExecute(sbx.sandboxId, code, headers)
      assert.equal(r.status, 401, `headers ${JSON.stringify(headers)}: ${r.body}`)
      assert.equal(JSON.parse(r.body).code, 401)
    }
    // Path tricks do not route around the check.
    for (const path of ['/contexts/../execute', '//execute', '/execute/']) {
      const res = await fetch(base + path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49999' },
        body: JSON.stringify({ code }),
      })
      assert.notEqual(res.status, 200, path)
    }
    assert.equal(await sbx.files.exists(marker), false, 'the unauthenticated code ran')
    // The SDK, which sends the token, still works.
    assert.equal((await sbx.runCode('1+1')).text, '2')
  })

  test('inside the sandbox, the interpreter checks the token itself', async () => {
    const r = await sbx.commands.run(
      `curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"code":"1"}' http://127.0.0.1:49999/execute`,
    )
    assert.equal(r.stdout.trim(), '401')
  })

  test('context routes work without a token, as the SDKs call them', async () => {
    const ctx = await sbx.createCodeContext({ language: 'python' })
    assert.ok((await sbx.listCodeContexts()).some((c) => c.id === ctx.id))
    await sbx.removeCodeContext(ctx.id)
  })

  test('an unsecured sandbox needs no token', async () => {
    const open = await createSandbox({ secure: false })
    try {
      const r = await rawExecute(open.sandboxId, '40+2')
      assert.equal(r.status, 200, r.body)
      assert.match(r.body, /"text":\s*"42"/)
    } finally {
      await killQuietly(open)
    }
  })
})

describe('user ports', () => {
  test('public by default, behind the traffic token with allowPublicTraffic: false', async () => {
    const pub = await createSandbox()
    const priv = await createSandbox({ network: { allowPublicTraffic: false } })
    try {
      for (const s of [pub, priv]) {
        await s.commands.run('python3 -m http.server 8000 --bind 0.0.0.0', { background: true, cwd: '/tmp' })
      }
      const get = async (s, headers = {}) => {
        for (let i = 0; i < 50; i++) {
          const res = await fetch(base + '/', { headers: { 'E2b-Sandbox-Id': s.sandboxId, 'E2b-Sandbox-Port': '8000', ...headers } })
          await res.arrayBuffer()
          if (res.status !== 502) return res.status
          await new Promise((r) => setTimeout(r, 100))
        }
        return 502
      }
      assert.equal(await get(pub), 200)
      assert.equal(await get(priv), 403)
      assert.equal(await get(priv, { 'E2B-Traffic-Access-Token': 'wrong' }), 403)
      assert.ok(priv.trafficAccessToken, 'create returned a traffic token')
      assert.equal(await get(priv, { 'E2B-Traffic-Access-Token': priv.trafficAccessToken }), 200)
    } finally {
      await killQuietly(pub)
      await killQuietly(priv)
    }
  })
})
