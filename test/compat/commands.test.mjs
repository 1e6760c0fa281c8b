// Commands: process.Process Start/Connect/List/SendInput/CloseStdin/SendSignal via the SDK.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import {
  CommandExitError,
  InvalidArgumentError,
  Sandbox,
  SandboxError,
  TimeoutError,
} from 'e2b'

import { SandboxTracker, errorOf, settlesWithin, waitFor } from './helpers.mjs'

describe('commands', () => {
  const tracker = new SandboxTracker()
  let sbx

  // One sandbox for the whole file: every test only starts its own processes.
  before(async () => {
    sbx = await tracker.create({ envs: { A: '1' }, timeoutMs: 180_000 })
  })

  after(() => tracker.killAll())

  test('create-time envs reach commands; stdout is returned', async () => {
    const r = await sbx.commands.run('echo $A; python3 -V')
    assert.match(r.stdout, /^1\nPython 3\.11\.\d+\n$/)
    assert.equal(r.stderr, '')
    assert.equal(r.exitCode, 0)
    assert.equal(r.error, undefined)
  })

  test('sandbox-level E2B_* variables are set', async () => {
    const r = await sbx.commands.run('echo "$E2B_SANDBOX|$E2B_SANDBOX_ID"')
    assert.equal(r.stdout, `true|${sbx.sandboxId}\n`)
  })

  test('stderr is captured separately from stdout', async () => {
    const r = await sbx.commands.run('echo out; echo err >&2; printf tail')
    assert.equal(r.stdout, 'out\ntail')
    assert.equal(r.stderr, 'err\n')
    assert.equal(r.exitCode, 0)
  })

  test('a non-zero exit throws CommandExitError with exitCode, stdout and stderr', async () => {
    await assert.rejects(
      sbx.commands.run('echo o; echo e >&2; exit 3'),
      errorOf(CommandExitError, (err) => {
        assert.ok(err instanceof SandboxError)
        assert.equal(err.exitCode, 3)
        assert.equal(err.stdout, 'o\n')
        assert.equal(err.stderr, 'e\n')
        assert.equal(err.error, 'exit status 3')
        assert.equal(err.message, 'exit status 3')
      }),
    )
  })

  test('per-command envs override sandbox envs for that command only', async () => {
    const r = await sbx.commands.run('echo "$A-$B"', { envs: { A: '2', B: 'x y' } })
    assert.equal(r.stdout, '2-x y\n')
    const again = await sbx.commands.run('echo "$A-$B"')
    assert.equal(again.stdout, '1-\n')
  })

  test('cwd selects the working directory; default is /home/user', async () => {
    assert.equal((await sbx.commands.run('pwd', { cwd: '/tmp' })).stdout, '/tmp\n')
    assert.equal((await sbx.commands.run('pwd')).stdout, '/home/user\n')
  })

  test('a nonexistent cwd is rejected with InvalidArgumentError', async () => {
    await assert.rejects(
      sbx.commands.run('pwd', { cwd: '/definitely/not/here' }),
      errorOf(InvalidArgumentError),
    )
  })

  test('user selects the Linux user; default user is "user"', async () => {
    assert.equal((await sbx.commands.run('whoami', { user: 'root' })).stdout, 'root\n')
    assert.equal((await sbx.commands.run('whoami')).stdout, 'user\n')
    assert.equal((await sbx.commands.run('echo $HOME', { user: 'root' })).stdout, '/root\n')
    assert.equal((await sbx.commands.run('echo $HOME')).stdout, '/home/user\n')
  })

  test('stdin: sendStdin + closeStdin feed a background command', async () => {
    const h = await sbx.commands.run('cat', { background: true, stdin: true })
    assert.ok(Number.isInteger(h.pid) && h.pid > 0, `pid ${h.pid}`)
    await sbx.commands.sendStdin(h.pid, 'hello\n')
    await sbx.commands.sendStdin(h.pid, new TextEncoder().encode('wörld\n'))
    await sbx.commands.closeStdin(h.pid)
    const r = await h.wait()
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'hello\nwörld\n')
  })

  test('without stdin: true the command sees EOF at once', async () => {
    const r = await sbx.commands.run('cat; echo done', { timeoutMs: 10_000 })
    assert.equal(r.stdout, 'done\n')
  })

  test('background commands are listed and can be killed', async () => {
    const h = await sbx.commands.run('sleep 30', { background: true })
    try {
      const listed = (await sbx.commands.list()).find((p) => p.pid === h.pid)
      assert.ok(listed, `pid ${h.pid} not in commands.list()`)
      assert.equal(listed.cmd, '/bin/bash')
      assert.deepEqual(listed.args, ['-l', '-c', 'sleep 30'])

      assert.equal(await sbx.commands.kill(h.pid), true)
      await assert.rejects(
        h.wait(),
        errorOf(CommandExitError, (err) => {
          assert.equal(err.exitCode, -1)
          assert.equal(err.error, 'signal: killed')
        }),
      )
      await waitFor(async () => !(await sbx.commands.list()).some((p) => p.pid === h.pid), {
        timeoutMs: 5_000,
        message: `pid ${h.pid} to leave commands.list()`,
      })
      assert.equal(await sbx.commands.kill(h.pid), false, 'kill of a finished pid')
      assert.equal(await sbx.commands.kill(999_999), false, 'kill of an unknown pid')
    } finally {
      await sbx.commands.kill(h.pid).catch(() => {})
    }
  })

  test('a disconnected background command keeps running and can be re-attached from another client', async () => {
    const script = 'for i in 1 2 3 4 5 6; do echo line$i; sleep 0.4; done; echo bye >&2'
    const firstSeen = []
    const h1 = await sbx.commands.run(script, {
      background: true,
      onStdout: (d) => {
        firstSeen.push(d)
      },
    })
    try {
      await waitFor(() => firstSeen.join('').includes('line1\n'), { timeoutMs: 5_000, message: 'line1' })
      await h1.disconnect()

      const other = await Sandbox.connect(sbx.sandboxId)
      const chunks = []
      const h2 = await other.commands.connect(h1.pid, { onStdout: (d) => chunks.push(d) })
      assert.equal(h2.pid, h1.pid)
      const r = await h2.wait()
      assert.equal(r.exitCode, 0)
      assert.ok(r.stdout.endsWith('line5\nline6\n'), `stdout after re-attach: ${JSON.stringify(r.stdout)}`)
      assert.ok(!r.stdout.includes('line1\n'), 'Connect streams live output only, not history')
      assert.equal(r.stderr, 'bye\n')
      assert.equal(chunks.join(''), r.stdout)
      assert.ok(
        !firstSeen.join('').includes('line6'),
        'the disconnected handle must not receive more output',
      )
    } finally {
      await sbx.commands.kill(h1.pid).catch(() => {})
    }
  })

  test('onStdout/onStderr stream partial output in order before the command ends', async () => {
    const events = []
    const started = Date.now()
    const r = await sbx.commands.run('echo a; sleep 1; echo b >&2; sleep 1; echo c', {
      onStdout: (d) => events.push({ kind: 'out', d, t: Date.now() }),
      onStderr: (d) => events.push({ kind: 'err', d, t: Date.now() }),
    })
    const ended = Date.now()

    const merged = events.map((e) => `${e.kind}:${e.d}`).join('')
    assert.equal(merged, 'out:a\nerr:b\nout:c\n')
    assert.equal(r.stdout, 'a\nc\n')
    assert.equal(r.stderr, 'b\n')
    assert.ok(ended - events[0].t >= 1_500, `first chunk arrived ${ended - events[0].t} ms before the end`)
    assert.ok(events[0].t - started < 1_500, 'first chunk was not delayed')
  })

  test('timeoutMs ends a command with TimeoutError and the process is killed', async () => {
    const marker = `timeout-marker-${process.pid}`
    const started = Date.now()
    await assert.rejects(
      sbx.commands.run(`sleep 10; echo ${marker}`, { timeoutMs: 1_000 }),
      errorOf(TimeoutError),
    )
    assert.ok(Date.now() - started < 5_000, 'timeout took too long')
    await waitFor(
      async () => !(await sbx.commands.list()).some((p) => p.args.some((a) => a.includes(marker))),
      { timeoutMs: 5_000, message: 'timed-out command to be killed server-side' },
    )
  })

  test('handle.kill() ends the command and wait() settles', async () => {
    const h = await sbx.commands.run('sleep 30', { background: true })
    assert.equal(await h.kill(), true)
    assert.ok(await settlesWithin(h.wait(), 5_000), 'wait() did not settle after kill')
    assert.equal(await h.kill(), false, 'second kill of the same handle')
  })
})
