// Shared setup for the Airlock compatibility suite.
//
// The suite drives the unmodified npm `e2b` SDK against an Airlock server. It is
// configured exactly like a user would configure the SDK: E2B_API_URL,
// E2B_SANDBOX_URL and E2B_API_KEY in the environment (run.sh expects the caller to
// set them). A missing variable fails every test file loudly instead of skipping.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'

import { Sandbox } from 'e2b'

export { sleep }

/** The envd port the SDK sends in `E2b-Sandbox-Port`. */
export const ENVD_PORT = '49983'

/** Metadata key/value stamped on every sandbox this suite creates, to find leaks. */
export const SUITE_TAG = { suite: 'airlock-compat' }

function requireEnv() {
  const names = ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY']
  const missing = names.filter((n) => !process.env[n])
  if (missing.length > 0) {
    throw new Error(
      `compat tests need ${missing.join(', ')} in the environment ` +
        '(point them at a running `airlock serve`, see test/compat/run.sh)',
    )
  }
  return {
    apiUrl: process.env.E2B_API_URL.replace(/\/+$/, ''),
    sandboxUrl: process.env.E2B_SANDBOX_URL.replace(/\/+$/, ''),
    apiKey: process.env.E2B_API_KEY,
  }
}

/** Connection settings read from the environment (throws if incomplete). */
export const env = requireEnv()

/** A name unique to this run: `<prefix>-<base36 time>-<hex>`, safe for paths and metadata. */
export function uniqueName(prefix = 'compat') {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
}

/**
 * Creates a sandbox with the suite tag merged into its metadata. Sandboxes are
 * short-lived by default so that a crashed run cannot leave them around for long.
 */
export async function createSandbox(opts = {}) {
  const { metadata, ...rest } = opts
  return Sandbox.create({
    timeoutMs: 120_000,
    ...rest,
    metadata: { ...SUITE_TAG, ...metadata },
  })
}

/** Kills a sandbox (or id), ignoring every error: used in cleanup paths only. */
export async function killQuietly(sbxOrId) {
  if (!sbxOrId) return
  const id = typeof sbxOrId === 'string' ? sbxOrId : sbxOrId.sandboxId
  try {
    await Sandbox.kill(id)
  } catch {
    // Cleanup must never mask the real test failure.
  }
}

/** Runs fn(sandbox) and always kills the sandbox afterwards. */
export async function withSandbox(opts, fn) {
  if (typeof opts === 'function') {
    fn = opts
    opts = {}
  }
  const sbx = await createSandbox(opts)
  try {
    return await fn(sbx)
  } finally {
    await killQuietly(sbx)
  }
}

/**
 * Tracks sandboxes created inside one describe block so an `after` hook can kill
 * all of them, including ones created by a test that failed half-way.
 */
export class SandboxTracker {
  #ids = new Set()

  async create(opts) {
    const sbx = await createSandbox(opts)
    this.#ids.add(sbx.sandboxId)
    return sbx
  }

  track(sbxOrId) {
    this.#ids.add(typeof sbxOrId === 'string' ? sbxOrId : sbxOrId.sandboxId)
  }

  async killAll() {
    const ids = [...this.#ids]
    this.#ids.clear()
    await Promise.all(ids.map((id) => killQuietly(id)))
  }
}

/** Drains an SDK paginator, returning every page (arrays of items) in order. */
export async function collectPages(paginator) {
  const pages = []
  while (paginator.hasNext) {
    pages.push(await paginator.nextItems())
    assert.ok(pages.length <= 1000, 'paginator did not terminate')
  }
  return pages
}

/**
 * Polls fn until it returns a truthy value, returning that value, or fails with
 * `message` (a string, or a function called at failure time) after timeoutMs.
 */
export async function waitFor(fn, { timeoutMs = 10_000, intervalMs = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs
  let lastError
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) {
      const suffix = lastError ? ` (last error: ${lastError})` : ''
      const what = typeof message === 'function' ? message() : message
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${suffix}`)
    }
    await sleep(intervalMs)
  }
}

/**
 * Returns an assert.rejects validator checking that the error is an instance of
 * cls, carries the SDK's class name, and passes the optional extra check.
 */
export function errorOf(cls, extra) {
  return (err) => {
    assert.ok(
      err instanceof cls,
      `expected ${cls.name}, got ${err?.constructor?.name} (${err?.name}): ${err?.message}`,
    )
    assert.equal(err.name, cls.name)
    if (extra) extra(err)
    return true
  }
}

/** Resolves true if promise settles (either way) within ms, false otherwise. */
export async function settlesWithin(promise, ms) {
  const guard = Symbol('timeout')
  let timer
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(guard), ms)
  })
  try {
    const r = await Promise.race([promise.then(() => true, () => true), timeout])
    return r !== guard
  } finally {
    clearTimeout(timer)
  }
}

/** fetch() against the control API, with the API key unless apiKey is null. */
export function apiFetch(path, { apiKey = env.apiKey, headers = {}, ...init } = {}) {
  const h = { ...headers }
  if (apiKey !== null) h['X-API-KEY'] = apiKey
  return fetch(`${env.apiUrl}${path}`, { ...init, headers: h })
}

/**
 * fetch() against the sandbox URL with header routing. Port defaults to envd's;
 * pass `sandboxId: null` or `port: null` to leave that routing header out.
 */
export function sandboxFetch(path, { sandboxId = null, port = ENVD_PORT, headers = {}, ...init } = {}) {
  const h = { ...headers }
  if (sandboxId !== null) h['E2b-Sandbox-Id'] = sandboxId
  if (port !== null) h['E2b-Sandbox-Port'] = port
  return fetch(`${env.sandboxUrl}${path}`, { ...init, headers: h })
}

/**
 * Reads a response that must be an E2B error body: asserts the status, a JSON
 * content type, `code` equal to the status and a non-empty `message`. Returns the body.
 */
export async function expectErrorBody(res, status) {
  const text = await res.text()
  assert.equal(res.status, status, `status (body: ${text.slice(0, 300)})`)
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, 'content-type')
  let body
  try {
    body = JSON.parse(text)
  } catch {
    assert.fail(`error body is not JSON: ${text.slice(0, 300)}`)
  }
  assert.equal(body.code, status, 'body.code')
  assert.equal(typeof body.message, 'string', 'body.message type')
  assert.ok(body.message.length > 0, 'body.message is empty')
  return body
}

/**
 * Deterministic pseudo-random bytes (xorshift32), produced chunk by chunk so a
 * large payload never has to sit in memory. Same seed ⇒ same bytes.
 */
export function* pseudoRandomChunks(seed, totalBytes, chunkBytes = 1 << 20) {
  let x = seed >>> 0 || 0x9e3779b9
  let left = totalBytes
  while (left > 0) {
    const n = Math.min(chunkBytes, left)
    const words = new Uint32Array(Math.ceil(n / 4))
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13
      x >>>= 0
      x ^= x >>> 17
      x ^= x << 5
      x >>>= 0
      words[i] = x
    }
    yield new Uint8Array(words.buffer, 0, n)
    left -= n
  }
}

/**
 * A ReadableStream over pseudoRandomChunks that also feeds every chunk into a
 * SHA-256; `digest()` is valid once the stream has been fully consumed.
 */
export function hashingPseudoRandomStream(seed, totalBytes) {
  const hash = createHash('sha256')
  const chunks = pseudoRandomChunks(seed, totalBytes)
  let sent = 0
  let done = false
  const stream = new ReadableStream({
    pull(controller) {
      const { value, done: finished } = chunks.next()
      if (finished) {
        done = true
        controller.close()
        return
      }
      hash.update(value)
      sent += value.length
      controller.enqueue(value)
    },
  })
  return {
    stream,
    digest() {
      assert.ok(done, 'stream not fully consumed')
      assert.equal(sent, totalBytes)
      return hash.digest('hex')
    },
  }
}

/** SHA-256 (hex) and byte count of a web ReadableStream, consumed incrementally. */
export async function hashStream(stream) {
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of stream) {
    hash.update(chunk)
    bytes += chunk.length
  }
  return { sha256: hash.digest('hex'), bytes }
}

/** Concatenates a web ReadableStream of Uint8Array into one Buffer. */
export async function readAll(stream) {
  const parts = []
  for await (const chunk of stream) parts.push(Buffer.from(chunk))
  return Buffer.concat(parts)
}
