// Bad input on the wire: raw fetch() against the control API and the sandbox URL,
// checking status codes and the E2B error bodies the SDKs depend on.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import {
  SUITE_TAG,
  SandboxTracker,
  apiFetch,
  expectErrorBody,
  killQuietly,
  sandboxFetch,
  uniqueName,
} from './helpers.mjs'

const BAD_API_KEY = `e2b_${'0'.repeat(40)}`
const JSON_HEADERS = { 'Content-Type': 'application/json' }

/** Kills a sandbox a misbehaving server created for a request that should have failed. */
async function cleanupAccidentalSandbox(res) {
  if (res.status !== 201 && res.status !== 200) return
  try {
    const body = await res.clone().json()
    if (body?.sandboxID) await killQuietly(body.sandboxID)
  } catch {
    // Not a sandbox body; nothing to clean up.
  }
}

describe('control API errors', () => {
  const createBody = (extra = {}) =>
    JSON.stringify({ templateID: 'base', timeout: 30, metadata: SUITE_TAG, ...extra })

  const cases = [
    {
      name: 'POST /sandboxes with malformed JSON → 400',
      path: '/sandboxes',
      init: { method: 'POST', headers: JSON_HEADERS, body: '{"templateID": "base", ' },
      status: 400,
    },
    {
      name: 'POST /sandboxes without templateID → 400',
      path: '/sandboxes',
      init: { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ timeout: 30 }) },
      status: 400,
    },
    {
      name: 'POST /sandboxes with a negative timeout → 400',
      path: '/sandboxes',
      init: { method: 'POST', headers: JSON_HEADERS, body: createBody({ timeout: -1 }) },
      status: 400,
    },
    {
      name: 'POST /sandboxes with an unknown template → 404',
      path: '/sandboxes',
      init: { method: 'POST', headers: JSON_HEADERS, body: createBody({ templateID: uniqueName('nope') }) },
      status: 404,
    },
    {
      name: 'POST /sandboxes without an API key → 401',
      path: '/sandboxes',
      init: { method: 'POST', headers: JSON_HEADERS, body: createBody(), apiKey: null },
      status: 401,
    },
    {
      name: 'POST /sandboxes with a wrong API key → 401',
      path: '/sandboxes',
      init: { method: 'POST', headers: JSON_HEADERS, body: createBody(), apiKey: BAD_API_KEY },
      status: 401,
    },
    {
      name: 'GET /v2/sandboxes without an API key → 401',
      path: '/v2/sandboxes',
      init: { apiKey: null },
      status: 401,
    },
    {
      name: 'GET /sandboxes/nonexistent → 404',
      path: '/sandboxes/nonexistent',
      init: {},
      status: 404,
    },
    {
      name: 'DELETE /sandboxes/nonexistent → 404',
      path: '/sandboxes/nonexistent',
      init: { method: 'DELETE' },
      status: 404,
    },
    {
      name: 'POST /sandboxes/nonexistent/timeout → 404',
      path: '/sandboxes/nonexistent/timeout',
      init: { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ timeout: 10 }) },
      status: 404,
    },
    {
      name: 'POST /sandboxes/nonexistent/connect → 404',
      path: '/sandboxes/nonexistent/connect',
      init: { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ timeout: 10 }) },
      status: 404,
    },
    {
      name: 'GET /v2/sandboxes?state=bogus → 400',
      path: '/v2/sandboxes?state=bogus',
      init: {},
      status: 400,
    },
    {
      name: 'GET /v2/sandboxes?order=bogus → 400',
      path: '/v2/sandboxes?order=bogus',
      init: {},
      status: 400,
    },
    {
      name: 'GET /v2/sandboxes with an invalid nextToken → 400',
      path: `/v2/sandboxes?nextToken=${encodeURIComponent('not a token!')}`,
      init: {},
      status: 400,
    },
  ]

  for (const c of cases) {
    test(c.name, async () => {
      const res = await apiFetch(c.path, c.init)
      try {
        await expectErrorBody(res.clone(), c.status)
      } finally {
        await cleanupAccidentalSandbox(res)
      }
    })
  }
})

describe('sandbox URL errors', () => {
  test('envd request for an unknown sandbox → 502 JSON naming the sandbox', async () => {
    for (const [path, init] of [
      ['/health', {}],
      ['/files?path=%2Fetc%2Fhostname', {}],
      ['/process.Process/List', { method: 'POST', headers: JSON_HEADERS, body: '{}' }],
    ]) {
      const res = await sandboxFetch(path, { sandboxId: 'nonexistent', ...init })
      const body = await expectErrorBody(res, 502)
      assert.equal(body.sandboxId, 'nonexistent', `${path}: body.sandboxId`)
    }
  })

  test('only one routing header → 400', async () => {
    const onlyId = await sandboxFetch('/health', { sandboxId: 'nonexistent', port: null })
    assert.equal(onlyId.status, 400, 'only E2b-Sandbox-Id')
    await onlyId.body?.cancel()

    const onlyPort = await sandboxFetch('/health', { sandboxId: null })
    assert.equal(onlyPort.status, 400, 'only E2b-Sandbox-Port')
    await onlyPort.body?.cancel()
  })
})

describe('envd access token', () => {
  const tracker = new SandboxTracker()
  let sbx

  before(async () => {
    sbx = await tracker.create()
  })

  after(() => tracker.killAll())

  const listProcesses = (token) =>
    sandboxFetch('/process.Process/List', {
      sandboxId: sbx.sandboxId,
      method: 'POST',
      headers: {
        ...JSON_HEADERS,
        'Connect-Protocol-Version': '1',
        ...(token === undefined ? {} : { 'X-Access-Token': token }),
      },
      body: '{}',
    })

  test('secured sandboxes get an access token', () => {
    assert.equal(typeof sbx.envdAccessToken, 'string')
    assert.ok(sbx.envdAccessToken.length >= 16, 'token is too short')
  })

  test('GET /health needs no token', async () => {
    const res = await sandboxFetch('/health', { sandboxId: sbx.sandboxId })
    assert.equal(res.status, 204)
  })

  test('RPCs need the right X-Access-Token', async () => {
    await expectErrorBody(await listProcesses(undefined), 401)
    await expectErrorBody(await listProcesses('wrong-token'), 401)

    const ok = await listProcesses(sbx.envdAccessToken)
    assert.equal(ok.status, 200)
    const body = await ok.json()
    assert.ok(Array.isArray(body.processes ?? []), `body ${JSON.stringify(body)}`)
  })

  test('GET /files needs a token or a signature', async () => {
    const path = '/files?path=%2Fetc%2Fhostname'
    await expectErrorBody(await sandboxFetch(path, { sandboxId: sbx.sandboxId }), 401)
    const ok = await sandboxFetch(path, {
      sandboxId: sbx.sandboxId,
      headers: { 'X-Access-Token': sbx.envdAccessToken },
    })
    assert.equal(ok.status, 200)
    assert.ok((await ok.text()).length > 0)
  })
})
