// Shared setup for the code-interpreter compatibility suite.
//
// The suite drives the unmodified npm `@e2b/code-interpreter` SDK (default
// template code-interpreter-v1) against an Airlock server, configured like a
// user would: E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY in the environment.
// A missing variable fails every test file loudly instead of skipping.

import { Sandbox } from '@e2b/code-interpreter'

const missing = ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY'].filter((n) => !process.env[n])
if (missing.length > 0) {
  throw new Error(
    `compat-ci tests need ${missing.join(', ')} in the environment ` +
      '(point them at a running `airlock serve`, see test/compat-ci/run.sh)',
  )
}

/** Metadata stamped on every sandbox this suite creates, to find leaks. */
export const SUITE_TAG = { suite: 'airlock-compat-ci' }

/** Creates a code-interpreter sandbox, short-lived so a crashed run cannot leave it around long. */
export function createSandbox(opts = {}) {
  const { metadata, ...rest } = opts
  return Sandbox.create({ timeoutMs: 300_000, ...rest, metadata: { ...SUITE_TAG, ...metadata } })
}

/** Kills a sandbox, ignoring errors: cleanup must never mask the real failure. */
export async function killQuietly(sbx) {
  if (!sbx) return
  try {
    await Sandbox.kill(sbx.sandboxId)
  } catch {
    // ignored
  }
}

/**
 * One sandbox shared by the tests of a file (each create boots a container and
 * a Python kernel): call setup() in before() and teardown() in after().
 */
export function sharedSandbox(opts = {}) {
  const box = {
    sbx: null,
    async setup() {
      box.sbx = await createSandbox(opts)
    },
    async teardown() {
      await killQuietly(box.sbx)
    },
  }
  return box
}

/** Asserts a string is a base64-encoded PNG. */
export function isPNG(b64) {
  return typeof b64 === 'string' && Buffer.from(b64, 'base64').subarray(0, 8).toString('hex') === '89504e470d0a1a0a'
}
