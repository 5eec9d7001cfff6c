// Signs in to a PDS with the official atproto OAuth client library, as a third-party app does,
// then creates a record with the DPoP-bound session it gets. The sign-in page is used in a real
// headless browser (Debian's chromium), filled in and submitted as a person would.
//
// Usage: node client.mjs <pds-url> <plc-url> <handle> <password>
// Prints one JSON line: {"did", "scope", "status", "uri"} of the record created, or exits 1.
import http from 'node:http'
import { NodeOAuthClient, requestLocalLock } from '@atproto/oauth-client-node'
import { chromium } from 'playwright-core'

const [pdsUrl, plcUrl, handle, password] = process.argv.slice(2)
const scope = 'atproto transition:generic'

// The app's loopback callback: the browser is sent here with the code.
let gotCallback
const callback = new Promise((resolve) => (gotCallback = resolve))
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1')
  if (url.pathname !== '/callback') return res.writeHead(404).end()
  res.writeHead(200, { 'content-type': 'text/plain' }).end('signed in')
  gotCallback(url.searchParams)
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const redirectUri = `http://127.0.0.1:${server.address().port}/callback`

const memory = () => {
  const map = new Map()
  return {
    set: async (key, value) => void map.set(key, value),
    get: async (key) => map.get(key),
    del: async (key) => void map.delete(key),
  }
}
const clientId =
  `http://localhost?redirect_uri=${encodeURIComponent(redirectUri)}` +
  `&scope=${encodeURIComponent(scope)}`
const client = new NodeOAuthClient({
  clientMetadata: {
    client_id: clientId,
    redirect_uris: [redirectUri],
    scope,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    application_type: 'native',
    dpop_bound_access_tokens: true,
  },
  stateStore: memory(),
  sessionStore: memory(),
  requestLock: requestLocalLock,
  // A local PDS speaks plain HTTP, its handles resolve through it, its DIDs through its PLC.
  allowHttp: true,
  handleResolver: pdsUrl,
  plcDirectoryUrl: plcUrl,
})

const authorizeUrl = await client.authorize(handle, { scope })

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox'],
})
try {
  const page = await browser.newPage()
  await page.goto(authorizeUrl.toString())
  // Found by their labels and roles, as assistive technology finds them.
  const identifier = page.getByLabel('Handle or e-mail')
  if ((await identifier.inputValue()) !== handle) {
    throw new Error('the login hint did not fill the form')
  }
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Allow' }).click()
  const params = await Promise.race([
    callback,
    new Promise((_, reject) => setTimeout(() => reject(new Error('no callback within 20 s')), 20000)),
  ])
  const { session } = await client.callback(params)
  const info = await session.getTokenInfo()
  const response = await session.fetchHandler('/xrpc/com.atproto.repo.createRecord', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      repo: session.did,
      collection: 'app.bsky.feed.post',
      record: { $type: 'app.bsky.feed.post', text: 'signed in with OAuth', createdAt: new Date().toISOString() },
    }),
  })
  const body = await response.json()
  console.log(JSON.stringify({ did: session.did, scope: info.scope, status: response.status, uri: body.uri, body }))
} finally {
  await browser.close()
  server.close()
}
