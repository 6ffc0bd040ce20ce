// The real Sluice binary for the kafkajs tests: started on free 127.0.0.1 ports with a
// temp data dir, like tests/clients/conftest.py does for the Python clients.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, openSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..')
const BIN = process.env.SLUICE_BIN || join(ROOT, 'target', 'release', 'sluice')

function freePort () {
  return new Promise((ok, fail) => {
    const s = createServer()
    s.on('error', fail)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => ok(port))
    })
  })
}

function accepts (port) {
  return new Promise(ok => {
    const c = connect(port, '127.0.0.1')
    c.on('connect', () => { c.destroy(); ok(true) })
    c.on('error', () => ok(false))
  })
}

export async function startBroker () {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-kafkajs-'))
  const port = await freePort()
  const admin = await freePort()
  const log = openSync(join(dir, 'broker.log'), 'a')
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SLUICE_')))
  const proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--admin-addr', `127.0.0.1:${admin}`,
    '--data-dir', join(dir, 'data'), '--shards', '2'], { stdio: ['ignore', log, log], env })
  const deadline = Date.now() + 20000
  while (!(await accepts(port))) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`broker did not start (log: ${dir}/broker.log)`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return {
    bootstrap: `127.0.0.1:${port}`,
    async stop () {
      proc.kill('SIGTERM')
      await new Promise(resolve => proc.exitCode !== null ? resolve() : proc.on('exit', resolve))
      if (process.env.SLUICE_KEEP_DATA !== '1') rmSync(dir, { recursive: true, force: true })
    }
  }
}

// Java's (and kafkajs 2's default partitioner's) murmur2, for checking key placement.
export function murmur2 (key) {
  const data = Buffer.from(key)
  const m = 0x5bd1e995
  const r = 24
  let h = (0x9747b28c ^ data.length) | 0
  const n4 = data.length >> 2
  for (let i = 0; i < n4; i++) {
    const o = i * 4
    let k = (data[o] & 0xff) + ((data[o + 1] & 0xff) << 8) + ((data[o + 2] & 0xff) << 16) + ((data[o + 3] & 0xff) << 24)
    k = Math.imul(k, m)
    k ^= k >>> r
    k = Math.imul(k, m)
    h = Math.imul(h, m)
    h ^= k
  }
  const left = data.length % 4
  const o = data.length & ~3
  if (left === 3) h ^= (data[o + 2] & 0xff) << 16
  if (left >= 2) h ^= (data[o + 1] & 0xff) << 8
  if (left >= 1) { h ^= data[o] & 0xff; h = Math.imul(h, m) }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h
}

export function javaPartition (key, partitions) {
  return (murmur2(key) & 0x7fffffff) % partitions
}
