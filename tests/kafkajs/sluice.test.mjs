// kafkajs 2.2.4 against the real Sluice binary: a client whose protocol code is its own
// (JavaScript, no librdkafka), used as a Node application would (issue 12, "How it is
// shown"). Admin, keyed produce on Java's partitioner with kafkajs's codecs (none and
// gzip are built in), idempotent and transactional producers, a two-member group
// rebalancing, offsets by timestamp, a topic deleted and created again.
//
//   SLUICE_BIN=target/release/sluice node --test tests/kafkajs/sluice.test.mjs
// (scripts/test.sh runs it; node 18 or later, kafkajs from package-lock.json). Tests in
// one file run one after another, on one broker.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import kafkajs from 'kafkajs'
import { startBroker, javaPartition } from './broker.mjs'

const { Kafka, CompressionTypes, ConfigResourceTypes, logLevel } = kafkajs

let broker
let kafka

before(async () => {
  broker = await startBroker()
  kafka = new Kafka({ clientId: 'sluice-kafkajs', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING })
})

after(async () => { await broker.stop() })

async function withAdmin (fn) {
  const admin = kafka.admin()
  await admin.connect()
  try { return await fn(admin) } finally { await admin.disconnect() }
}

async function create (topic, numPartitions, configEntries = []) {
  await withAdmin(admin => admin.createTopics({ topics: [{ topic, numPartitions, configEntries }], waitForLeaders: true }))
}

// Every message of `topic` from the beginning, through a fresh group, until `count` came.
async function readAll (topic, count, options = {}) {
  const consumer = kafka.consumer({ groupId: `reader-${topic}-${Math.random()}`, ...options })
  await consumer.connect()
  const got = []
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    let done
    const enough = new Promise(resolve => { done = resolve })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        got.push({ partition, offset: Number(message.offset), key: message.key?.toString(), value: message.value.toString() })
        if (got.length >= count) done()
      }
    })
    await enough
    // Nothing more than expected arrives.
    await new Promise(resolve => setTimeout(resolve, 300))
  } finally {
    await consumer.disconnect()
  }
  return got
}

test('admin creates topics with configs, describes them, adds partitions and deletes them', { timeout: 120000 }, async () => {
  await withAdmin(async admin => {
    await admin.createTopics({ topics: [{ topic: 'js-admin', numPartitions: 2, configEntries: [{ name: 'retention.ms', value: '3600000' }] }], waitForLeaders: true })
    const described = await admin.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: 'js-admin', configNames: ['retention.ms'] }], includeSynonyms: false })
    assert.equal(described.resources[0].configEntries[0].configValue, '3600000')
    await admin.createPartitions({ topicPartitions: [{ topic: 'js-admin', count: 4 }] })
    const { topics } = await admin.fetchTopicMetadata({ topics: ['js-admin'] })
    assert.equal(topics[0].partitions.length, 4)
    assert.ok(topics[0].partitions.every(p => p.leader === 1))
    const cluster = await admin.describeCluster()
    assert.deepEqual(cluster.brokers.map(b => b.nodeId), [1])
    assert.equal(cluster.controller, 1)
    await admin.deleteTopics({ topics: ['js-admin'] })
    assert.ok(!(await admin.listTopics()).includes('js-admin'))
  })
})

test('keyed messages without and with gzip land on Java\'s partition, in order, at their offsets', { timeout: 120000 }, async () => {
  await create('js-keys', 6)
  const producer = kafka.producer()
  await producer.connect()
  const acked = new Map()
  try {
    for (const compression of [CompressionTypes.None, CompressionTypes.GZIP]) {
      for (let round = 0; round < 10; round++) {
        const messages = []
        for (let i = 0; i < 100; i++) {
          const key = `key-${i % 37}`
          messages.push({ key, value: `${key}|${compression}|${round * 100 + i}` })
        }
        await producer.send({ topic: 'js-keys', compression, messages })
      }
    }
  } finally {
    await producer.disconnect()
  }
  const got = await readAll('js-keys', 2000)
  assert.equal(got.length, 2000)
  assert.equal(new Set(got.map(r => r.value)).size, 2000)
  const seqs = new Map()
  for (const r of got.sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
    assert.equal(r.partition, javaPartition(r.key, 6), r.key)
    const [key, codec, n] = r.value.split('|')
    const seq = seqs.get(key + codec) ?? []
    seq.push(Number(n))
    seqs.set(key + codec, seq)
    acked.set(r.value, true)
  }
  for (const seq of seqs.values()) assert.deepEqual(seq, [...seq].sort((a, b) => a - b))
})

test('an idempotent producer writes each message once', { timeout: 120000 }, async () => {
  await create('js-idem', 3)
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  try {
    for (let b = 0; b < 20; b++) {
      await producer.send({ topic: 'js-idem', acks: -1, messages: Array.from({ length: 50 }, (_, i) => ({ value: `idem-${b * 50 + i}`, partition: i % 3 })) })
    }
  } finally {
    await producer.disconnect()
  }
  const got = await readAll('js-idem', 1000)
  assert.equal(got.length, 1000)
  assert.equal(new Set(got.map(r => r.value)).size, 1000)
})

test('transactions: committed records are read, aborted ones are not (read_committed)', { timeout: 120000 }, async () => {
  await create('js-txn', 2)
  const producer = kafka.producer({ transactionalId: 'js-t1', idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  try {
    const commit = await producer.transaction()
    await commit.send({ topic: 'js-txn', messages: Array.from({ length: 100 }, (_, i) => ({ value: `commit-${i}`, partition: i % 2 })) })
    await commit.commit()
    const abort = await producer.transaction()
    await abort.send({ topic: 'js-txn', messages: Array.from({ length: 50 }, (_, i) => ({ value: `abort-${i}`, partition: i % 2 })) })
    await abort.abort()
    const last = await producer.transaction()
    await last.send({ topic: 'js-txn', messages: [{ value: 'end', partition: 0 }] })
    await last.commit()
  } finally {
    await producer.disconnect()
  }
  const committed = await readAll('js-txn', 101)
  assert.deepEqual(committed.map(r => r.value).filter(v => v.startsWith('abort')), [])
  assert.equal(committed.filter(r => r.value.startsWith('commit')).length, 100)
  const everything = await readAll('js-txn', 151, { readUncommitted: true })
  assert.equal(everything.filter(r => r.value.startsWith('abort')).length, 50)
})

test('two members of a group rebalance to two partitions each and share every message', { timeout: 120000 }, async () => {
  await create('js-group', 4)
  const assignments = [[], []]
  const got = [[], []]
  const members = [0, 1].map(() => kafka.consumer({ groupId: 'js-g', sessionTimeout: 10000, heartbeatInterval: 500, rebalanceTimeout: 10000 }))
  try {
    for (const [n, m] of members.entries()) {
      m.on(m.events.GROUP_JOIN, e => { assignments[n] = e.payload.memberAssignment['js-group'] ?? [] })
      await m.connect()
      await m.subscribe({ topic: 'js-group', fromBeginning: true })
      await m.run({ eachMessage: async ({ message }) => { got[n].push(message.value.toString()) } })
      if (n === 0) {
        while (assignments[0].length !== 4) await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
    while (assignments[0].length !== 2 || assignments[1].length !== 2) await new Promise(resolve => setTimeout(resolve, 100))
    assert.deepEqual([...assignments[0], ...assignments[1]].sort(), [0, 1, 2, 3])
    const producer = kafka.producer()
    await producer.connect()
    await producer.send({ topic: 'js-group', messages: Array.from({ length: 400 }, (_, i) => ({ value: `g-${i}`, partition: i % 4 })) })
    await producer.disconnect()
    while (got[0].length + got[1].length < 400) await new Promise(resolve => setTimeout(resolve, 100))
    assert.ok(got[0].length > 0 && got[1].length > 0)
    assert.equal(new Set([...got[0], ...got[1]]).size, 400)
  } finally {
    for (const m of members) await m.disconnect()
  }
  const offsets = await withAdmin(admin => admin.fetchOffsets({ groupId: 'js-g', topics: ['js-group'] }))
  assert.deepEqual(offsets[0].partitions.map(p => Number(p.offset)).sort(), [100, 100, 100, 100])
})

test('offsets by timestamp find the first record at or after it', { timeout: 120000 }, async () => {
  await create('js-times', 1)
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({ topic: 'js-times', messages: Array.from({ length: 10 }, (_, i) => ({ value: `t${i}`, partition: 0, timestamp: String((i + 1) * 1000) })) })
  await producer.disconnect()
  await withAdmin(async admin => {
    assert.deepEqual(await admin.fetchTopicOffsetsByTimestamp('js-times', 2500), [{ partition: 0, offset: '2' }])
    const [latest] = await admin.fetchTopicOffsets('js-times')
    assert.equal(latest.offset, '10')
    assert.equal(latest.low, '0')
  })
})

test('a deleted topic created again starts empty', { timeout: 120000 }, async () => {
  await create('js-again', 2)
  const old = kafka.producer()
  await old.connect()
  try {
    await old.send({ topic: 'js-again', messages: Array.from({ length: 20 }, (_, i) => ({ value: `old-${i}`, partition: i % 2 })) })
  } finally {
    await old.disconnect()
  }
  await withAdmin(admin => admin.deleteTopics({ topics: ['js-again'] }))
  await create('js-again', 3)
  // A new producer: one that lived through the delete keeps its 2-partition metadata.
  const producer = kafka.producer()
  await producer.connect()
  try {
    const sent = await producer.send({ topic: 'js-again', messages: Array.from({ length: 6 }, (_, i) => ({ value: `new-${i}`, partition: i % 3 })) })
    assert.deepEqual(sent.map(r => [r.partition, r.baseOffset]).sort(), [[0, '0'], [1, '0'], [2, '0']])
  } finally {
    await producer.disconnect()
  }
  const got = await readAll('js-again', 6)
  assert.deepEqual(got.map(r => r.value).sort(), ['new-0', 'new-1', 'new-2', 'new-3', 'new-4', 'new-5'])
})
