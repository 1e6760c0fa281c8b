// Latency probe for the code interpreter (not part of the test run):
//   node bench.mjs [sandboxes=3] [roundTrips=20]
// For each sandbox: create latency, the first runCode('1+1') right after
// create (what the SDK user sees first), then the runCode('1+1') round trip.
import { Sandbox } from '@e2b/code-interpreter'

const boxes = Number(process.argv[2] ?? 3)
const trips = Number(process.argv[3] ?? 20)

const ms = (t) => Number(t.toFixed(1))
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const rows = []
for (let i = 0; i < boxes; i++) {
  let t = performance.now()
  const sbx = await Sandbox.create({ timeoutMs: 120_000, metadata: { suite: 'airlock-compat-ci-bench' } })
  const create = performance.now() - t
  try {
    t = performance.now()
    const first = await sbx.runCode('1+1')
    const firstRun = performance.now() - t
    if (first.text !== '2') throw new Error(`first runCode gave ${JSON.stringify(first.text)}`)
    const rt = []
    for (let j = 0; j < trips; j++) {
      t = performance.now()
      await sbx.runCode('1+1')
      rt.push(performance.now() - t)
    }
    rows.push({ create: ms(create), firstRunCode: ms(firstRun), createToFirstResult: ms(create + firstRun), roundTripMedian: ms(median(rt)), roundTripMax: ms(Math.max(...rt)) })
  } finally {
    await sbx.kill()
  }
}
console.table(rows)
console.log(JSON.stringify(rows))
