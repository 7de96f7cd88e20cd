// A js-libp2p node for rhizo's interoperability test (crates/rhizo/tests/interop_js.rs).
//
// It listens on /ip4/127.0.0.1/tcp/0 and speaks what rhizo speaks: TCP + Noise + Yamux,
// identify, ping, Kademlia under rhizo's protocol id `/rhizo/kad/1.0.0` (server mode) and
// gossipsub (signed messages, message id = SHA-256 of the data, as rhizo computes it).
//
// The test drives it with one JSON object per line on stdin and reads JSON lines on stdout:
//
//   startup            → {"event":"ready","peer_id":…,"addrs":[…]}
//   {"id":1,"cmd":…}   → {"id":1,"ok":true,…} or {"id":1,"ok":false,"error":…}
//   gossip received    → {"event":"gossip","topic":…,"data_hex":…,"from":…,"via":…}
//   peer connected     → {"event":"connect","peer":…}
//
// Commands (each may carry "timeout_ms", default 30000; every wait inside is bounded by it):
//
//   dial {addr}                      → {peer}
//   ping {peer}                      → {rtt_ms (js-libp2p's, whole ms), rtt_hr_ms (measured here)}
//   identify {peer}                  → {agent_version, protocol_version, protocols}
//   routing_table {min}              → {size}   (waits until the DHT table holds ≥ min peers)
//   closest {key_hex}                → {peers, queried, errors}  (getClosestPeers)
//   provide {cid}                    → {sent_to, errors}
//   find_providers {cid}             → {providers, queried, errors}
//   subscribe {topic}                → {}
//   topic_peers {topic, min}         → {peers}  (waits until ≥ min peers are subscribed)
//   publish {topic, data_hex}        → {recipients}
//   connections                      → {peers}
//   stop                             → {} then exit
//
// Logs go to stderr. The process stops its node and exits when stdin closes.
//
// js-libp2p 3 uses Promise.withResolvers (Node ≥ 22); this polyfill lets it run on Node 20. It
// must be in place before any libp2p module loads, hence the dynamic imports below.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve
    let reject
    const promise = new this((res, rej) => {
      resolve = res
      reject = rej
    })
    return { promise, resolve, reject }
  }
}

const { createHash } = await import('node:crypto')
const { createInterface } = await import('node:readline')
const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { kadDHT, passthroughMapper } = await import('@libp2p/kad-dht')
const { gossipsub } = await import('@libp2p/gossipsub')
const { multiaddr } = await import('@multiformats/multiaddr')
const { peerIdFromString } = await import('@libp2p/peer-id')
const { CID } = await import('multiformats/cid')

const KAD_PROTOCOL = '/rhizo/kad/1.0.0'
const AGENT = 'rhizo-interop-js/1.0.0'
const DEFAULT_TIMEOUT_MS = 30_000

function emit (object) {
  process.stdout.write(JSON.stringify(object) + '\n')
}

function log (...args) {
  process.stderr.write(`[js ${new Date().toISOString()}] ${args.join(' ')}\n`)
}

const toHex = (bytes) => Buffer.from(bytes).toString('hex')

function fromHex (hex) {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new Error('expected an even number of hex digits')
  }
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

function errorText (err) {
  if (err == null) return 'unknown error'
  const name = err.name != null && err.name !== 'Error' ? `${err.name}: ` : ''
  return `${name}${err.message ?? String(err)}`
}

// Background failures in libp2p must not kill the node mid-test: log them and go on.
process.on('unhandledRejection', (err) => log('unhandled rejection:', errorText(err)))
process.on('uncaughtException', (err) => log('uncaught exception:', errorText(err), err?.stack ?? ''))

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` every 100 ms until it returns a value other than undefined, or fails. */
async function waitFor (what, signal, check) {
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (signal.aborted) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  nodeInfo: { userAgent: AGENT },
  services: {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({
      protocol: KAD_PROTOCOL,
      clientMode: false,
      // The default mapper drops private addresses, and every address here is 127.0.0.1.
      peerInfoMapper: passthroughMapper
    }),
    pubsub: gossipsub({
      allowPublishToZeroTopicPeers: false,
      emitSelf: false,
      // rhizo identifies a message by the SHA-256 of its data (content addressing); use the
      // same ids so IHAVE/IWANT gossip between the two refers to the same messages.
      msgIdFn: (msg) => new Uint8Array(createHash('sha256').update(msg.data).digest()),
      heartbeatInterval: 1000
    })
  }
})

node.addEventListener('peer:connect', (evt) => emit({ event: 'connect', peer: evt.detail.toString() }))

const pubsub = node.services.pubsub
pubsub.addEventListener('gossipsub:message', (evt) => {
  const { msg, propagationSource } = evt.detail
  emit({
    event: 'gossip',
    topic: msg.topic,
    data_hex: toHex(msg.data),
    from: msg.type === 'signed' ? msg.from.toString() : null,
    via: propagationSource.toString()
  })
})

function existingConnection (peer) {
  return node.getConnections(peer).find((c) => c.status === 'open')
}

function collectErrors (errors, event) {
  if (event.name === 'QUERY_ERROR') {
    errors.push(`${event.from?.toString() ?? '?'}: ${errorText(event.error)}`)
  }
}

const handlers = {
  async dial ({ addr }, signal) {
    const connection = await node.dial(multiaddr(addr), { signal })
    return { peer: connection.remotePeer.toString() }
  },

  async ping ({ peer }, signal) {
    const started = process.hrtime.bigint()
    const rtt = await node.services.ping.ping(peerIdFromString(peer), { signal })
    const elapsed = Number(process.hrtime.bigint() - started) / 1e6
    return { rtt_ms: rtt, rtt_hr_ms: elapsed }
  },

  async identify ({ peer }, signal) {
    const id = peerIdFromString(peer)
    const connection = existingConnection(id) ?? await node.dial(id, { signal })
    const result = await node.services.identify.identify(connection, { signal })
    return {
      agent_version: result.agentVersion ?? null,
      protocol_version: result.protocolVersion ?? null,
      protocols: result.protocols,
      listen_addrs: result.listenAddrs.map((a) => a.toString())
    }
  },

  async routing_table ({ min = 1 }, signal) {
    const size = await waitFor(`${min} peers in the DHT routing table`, signal, () => {
      const size = node.services.dht.routingTable.size
      return size >= min ? size : undefined
    })
    return { size }
  },

  async closest ({ key_hex: keyHex }, signal) {
    const key = fromHex(keyHex)
    const peers = new Set()
    const queried = new Set()
    const errors = []
    for await (const event of node.services.dht.getClosestPeers(key, { signal })) {
      if (event.name === 'FINAL_PEER') peers.add(event.peer.id.toString())
      if (event.name === 'PEER_RESPONSE') queried.add(event.from.toString())
      collectErrors(errors, event)
    }
    return { peers: [...peers], queried: [...queried], errors }
  },

  async provide ({ cid }, signal) {
    const sentTo = new Set()
    const errors = []
    for await (const event of node.services.dht.provide(CID.parse(cid), { signal })) {
      if (event.name === 'PEER_RESPONSE' && event.messageName === 'ADD_PROVIDER') {
        sentTo.add(event.from.toString())
      }
      collectErrors(errors, event)
    }
    return { sent_to: [...sentTo], errors }
  },

  async find_providers ({ cid }, signal) {
    const providers = new Set()
    const queried = new Set()
    const errors = []
    for await (const event of node.services.dht.findProviders(CID.parse(cid), { signal })) {
      if (event.name === 'PROVIDER') {
        for (const info of event.providers) providers.add(info.id.toString())
      }
      if (event.name === 'PEER_RESPONSE') queried.add(event.from.toString())
      collectErrors(errors, event)
    }
    return { providers: [...providers], queried: [...queried], errors }
  },

  async subscribe ({ topic }) {
    pubsub.subscribe(topic)
    return {}
  },

  async topic_peers ({ topic, min = 1 }, signal) {
    const peers = await waitFor(`${min} peers subscribed to ${topic}`, signal, () => {
      const peers = pubsub.getSubscribers(topic).map((p) => p.toString())
      return peers.length >= min ? peers : undefined
    })
    return { peers }
  },

  async publish ({ topic, data_hex: dataHex }) {
    const result = await pubsub.publish(topic, fromHex(dataHex))
    return { recipients: result.recipients.map((p) => p.toString()) }
  },

  async connections () {
    return { peers: [...new Set(node.getConnections().map((c) => c.remotePeer.toString()))] }
  },

  async stop () {
    setImmediate(() => { shutdown(0) })
    return {}
  }
}

async function run (request) {
  const { id = null, cmd } = request
  const handler = Object.hasOwn(handlers, cmd) ? handlers[cmd] : undefined
  if (handler === undefined) {
    emit({ id, ok: false, error: `unknown command ${JSON.stringify(cmd)}` })
    return
  }
  const timeoutMs = Number.isFinite(request.timeout_ms) ? request.timeout_ms : DEFAULT_TIMEOUT_MS
  const signal = AbortSignal.timeout(timeoutMs)
  // Operations that ignore the signal still end at the deadline (plus a grace period).
  let timer
  const deadline = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${cmd} did not finish within ${timeoutMs} ms`)), timeoutMs + 2000)
  })
  try {
    const result = await Promise.race([handler(request, signal), deadline])
    emit({ id, ok: true, ...result })
  } catch (err) {
    emit({ id, ok: false, error: errorText(err) })
  } finally {
    clearTimeout(timer)
  }
}

let stopping = false
async function shutdown (code) {
  if (stopping) return
  stopping = true
  const forced = setTimeout(() => process.exit(code), 5000)
  forced.unref()
  try {
    await node.stop()
  } catch (err) {
    log('stop failed:', errorText(err))
  }
  process.exit(code)
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
lines.on('line', (line) => {
  if (line.trim() === '') return
  let request
  try {
    request = JSON.parse(line)
  } catch (err) {
    emit({ id: null, ok: false, error: `not JSON: ${errorText(err)}` })
    return
  }
  run(request).catch((err) => emit({ id: request.id ?? null, ok: false, error: errorText(err) }))
})
lines.on('close', () => { shutdown(0) })
process.on('SIGTERM', () => { shutdown(0) })

emit({
  event: 'ready',
  peer_id: node.peerId.toString(),
  addrs: node.getMultiaddrs().map((a) => a.toString()),
  agent_version: AGENT
})
log('ready as', node.peerId.toString())
