import { Sandbox } from 'e2b'
const sbx = await Sandbox.create()
try {
  const r = await sbx.files.write([{ path: 'rel.txt', data: 'a' }, { path: 'sub/rel2.txt', data: 'b' }, { path: '/tmp/abs.txt', data: 'c' }])
  console.log(JSON.stringify(r))
  console.log(await sbx.files.read('/home/user/rel.txt'), await sbx.files.read('/home/user/sub/rel2.txt'))
  console.log(JSON.stringify(await sbx.files.write([])))
  try { console.log(JSON.stringify(await sbx.files.write([{ path: 'd.txt', data: '1' }, { path: 'd.txt', data: '2' }]))); console.log(await sbx.files.read('d.txt')) } catch (e) { console.log('dup error', e.constructor.name, e.message) }
} finally { await sbx.kill() }
