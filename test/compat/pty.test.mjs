// PTY: process.Process Start with a pty, SendInput{pty}, Update (resize), SendSignal.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { CommandExitError } from 'e2b'

import { SandboxTracker, errorOf, settlesWithin, waitFor } from './helpers.mjs'

const encoder = new TextEncoder()

/** Collects PTY output as text; `since(mark)` returns output after a mark. */
class Terminal {
  #decoder = new TextDecoder()
  text = ''

  onData = (bytes) => {
    assert.ok(bytes instanceof Uint8Array, 'onData receives raw bytes')
    this.text += this.#decoder.decode(bytes, { stream: true })
  }

  mark() {
    return this.text.length
  }

  since(mark) {
    return this.text.slice(mark)
  }

  async waitFor(mark, re, what) {
    await waitFor(() => re.test(this.since(mark)), {
      timeoutMs: 10_000,
      message: () => `${what} in PTY output: ${JSON.stringify(this.since(mark).slice(-400))}`,
    })
  }
}

describe('pty', () => {
  const tracker = new SandboxTracker()
  let sbx

  before(async () => {
    sbx = await tracker.create()
  })

  after(() => tracker.killAll())

  test('input is echoed through a shell, resize is applied, kill ends it', async () => {
    const term = new Terminal()
    const h = await sbx.pty.create({ cols: 80, rows: 24, onData: term.onData })
    let killed = false
    try {
      assert.ok(Number.isInteger(h.pid) && h.pid > 0, `pid ${h.pid}`)

      let m = term.mark()
      await sbx.pty.sendInput(h.pid, encoder.encode('echo hello\n'))
      await term.waitFor(m, /[\r\n]hello\r?\n/, 'hello')

      m = term.mark()
      await sbx.pty.sendInput(h.pid, encoder.encode('stty size\n'))
      await term.waitFor(m, /[\r\n]24 80\r?\n/, 'initial size 24 80')

      await sbx.pty.resize(h.pid, { cols: 100, rows: 40 })
      m = term.mark()
      await sbx.pty.sendInput(h.pid, encoder.encode('stty size\n'))
      await term.waitFor(m, /[\r\n]40 100\r?\n/, 'resized 40 100')

      m = term.mark()
      await sbx.pty.sendInput(h.pid, encoder.encode('echo "$TERM|$LANG|$(whoami)|$PWD"\n'))
      await term.waitFor(m, /[\r\n]xterm-256color\|C\.UTF-8\|user\|\/home\/user\r?\n/, 'pty environment')

      assert.equal(await sbx.pty.kill(h.pid), true)
      killed = true
      const waited = h.wait()
      assert.ok(await settlesWithin(waited, 10_000), 'wait() did not settle after kill')
      await assert.rejects(waited, errorOf(CommandExitError, (err) => assert.equal(err.exitCode, -1)))
      assert.equal(await sbx.pty.kill(h.pid), false, 'kill of a finished pty')
    } finally {
      if (!killed) await sbx.pty.kill(h.pid).catch(() => {})
    }
  })

  test('exiting the shell ends the pty with its exit code', async () => {
    const term = new Terminal()
    const h = await sbx.pty.create({ cols: 80, rows: 24, onData: term.onData })
    try {
      await sbx.pty.sendInput(h.pid, encoder.encode('exit 7\n'))
      const waited = h.wait()
      assert.ok(await settlesWithin(waited, 10_000), 'wait() did not settle after exit')
      await assert.rejects(waited, errorOf(CommandExitError, (err) => assert.equal(err.exitCode, 7)))
    } finally {
      await sbx.pty.kill(h.pid).catch(() => {})
    }
  })
})
