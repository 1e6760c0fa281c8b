// The official E2B CLI (@e2b/cli, pinned) against Airlock: `e2b template
// create` builds a Dockerfile through the build API (the CLI parses it with
// the SDK and sends the steps), and sandboxes start from the result.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, describe, test } from 'node:test'

import { Sandbox, Template } from 'e2b'

import { apiFetch, killQuietly, uniqueName } from './helpers.mjs'

const cli = join(dirname(fileURLToPath(import.meta.url)), 'node_modules', '.bin', 'e2b')
const work = mkdtempSync(join(tmpdir(), 'airlock-e2bcli-'))
const names = []

after(async () => {
  rmSync(work, { recursive: true, force: true })
  for (const n of names) {
    await apiFetch(`/templates/${encodeURIComponent(n)}`, { method: 'DELETE' }).catch(() => {})
  }
})

// e2b runs the CLI as a user would: the API key and URL from the
// environment, a HOME of its own so no login config is read.
function e2b(args, cwd) {
  const home = join(work, 'home')
  mkdirSync(home, { recursive: true })
  return new Promise((resolve) => {
    execFile(cli, args, { cwd, env: { ...process.env, HOME: home, NO_COLOR: '1' }, timeout: 300_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr })
    })
  })
}

describe('e2b CLI', () => {
  test('template create builds a Dockerfile: FROM, RUN, COPY, ENV, WORKDIR, USER, CMD', async () => {
    const dir = join(work, 'app')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'greeting.txt'), 'hello from the context\n')
    writeFileSync(join(dir, 'Dockerfile'), [
      'FROM e2bdev/base',
      'ENV APP_MODE=cli',
      'RUN echo "built by $(whoami)" > /etc/built-by',
      'WORKDIR /srv/app',
      'COPY greeting.txt .',
      'USER user',
      'RUN echo "$APP_MODE" > /home/user/mode.txt',
      '',
    ].join('\n'))
    const name = uniqueName('cli-tpl')
    names.push(name)
    const res = await e2b(['template', 'create', name, '--path', dir, '--dockerfile', 'Dockerfile', '--cpu-count', '1', '--memory-mb', '512'], dir)
    assert.equal(res.code, 0, `e2b template create failed:\n${res.stdout}\n${res.stderr}`)
    assert.equal(await Template.exists(name), true)
    const sbx = await Sandbox.create(name)
    try {
      const r = await sbx.commands.run('cat /etc/built-by /srv/app/greeting.txt /home/user/mode.txt; pwd; whoami; echo $APP_MODE')
      assert.equal(r.stdout, 'built by root\nhello from the context\ncli\n/srv/app\nuser\ncli\n')
    } finally {
      await killQuietly(sbx)
    }
  })

  test('template create reports a failing RUN and registers nothing', async () => {
    const dir = join(work, 'bad')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'Dockerfile'), 'FROM e2bdev/base\nRUN echo broken-step >&2 && exit 7\n')
    const name = uniqueName('cli-bad')
    const res = await e2b(['template', 'create', name, '--path', dir, '--dockerfile', 'Dockerfile', '--cpu-count', '1', '--memory-mb', '512'], dir)
    assert.notEqual(res.code, 0)
    assert.match(res.stdout + res.stderr, /exit status 7/)
    assert.equal(await Template.exists(name), false)
  })
})
