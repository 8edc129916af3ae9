#!/usr/bin/env node
// A local stand-in for the delivery services the workers call, speaking their wire formats over
// loopback: Twilio's Messages API, SendGrid's v3 mail send, Google's OAuth2 token endpoint and FCM
// HTTP v1 (over HTTP/1.1), and APNs (over HTTP/2 with prior knowledge, --h2). It checks what a
// real service would check (method, path, authentication, required body fields, JWT signatures)
// and answers like the service does, success or error. Node's built-in modules only.
// (HTTP/2 over TLS for APNs: libcurl 7.88 breaks reused h2c prior-knowledge connections, curl#10634.)
// It is never more forgiving than the service: none of these services documents a deduplication
// key for its send call (APNs' apns-id is an id echoed in the answer, SendGrid's mail send and
// Twilio's Messages take no idempotency key, FCM v1 neither), so a repeated request is accepted
// again and counted in duplicate_accepts. APNs' rules: payload at most 4096 bytes (5120 for voip),
// apns-priority 10, 5 or 1 and 5 for background pushes (BadPriority), a known apns-push-type
// (InvalidPushType), apns-collapse-id at most 64 bytes (BadCollapseId), apns-id a UUID if present.
//
// Usage: provider_fake.js --port-file F [--h2] [--tls-cert C --tls-key K] [--delay-ms N] [--no-record]
//          [--twilio-sid SID --twilio-token TOKEN] [--sendgrid-key KEY]
//          [--fcm-credentials FILE] [--token-ttl SECONDS]
//          [--apns-key FILE --apns-key-id ID --apns-team-id ID --apns-topic TOPIC]
//
// --tls-cert without --h2: HTTPS over HTTP/1.1 (the workers' own HTTP/1.1 client over TLS).
// Test control (JSON; with --h2 or --tls-cert over plain HTTP/1.1 on the port written to
// <port-file>.control):
//   POST /_fake/script  {"rules": [{"match": "text in path or body", "status": 400,
//                          "body": {...} | "text", "headers": {...}, "times": N (-1: always)}],
//                        "fail_first": {"count": N, "status": 503, "body": ..., "headers": {...}},
//                        "delay_ms": N, "delay_first": {"count": N, "delay_ms": M}, "goaway_after": N}
//                       rules apply first; fail_first fails the first N requests of every key;
//                       delay_first answers the first N requests of every key after M ms (the
//                       others after delay_ms), so a test need not race a script change;
//                       goaway_after (HTTP/2): once N requests were answered on a connection, it
//                       (once per script)
//                       sends GOAWAY (NO_ERROR, last stream = the last one answered, debug data
//                       {"reason":"Shutdown"}) and refuses every later stream (RST_STREAM
//                       REFUSED_STREAM), unanswered and not counted, as a server going away does
//   POST /_fake/webhook  sends a signed webhook as the provider would, answers {status, body} of it:
//                        {"provider": "sendgrid", "url": U, "events": [...], "timestamp": S?, "tamper": B?}
//                          SendGrid's signed Event Webhook: ECDSA P-256/SHA-256 over timestamp + body
//                          with the fake's own key (GET /_fake/sendgrid-key), base64 DER signature in
//                          X-Twilio-Email-Event-Webhook-Signature, the timestamp (default now) in
//                          X-Twilio-Email-Event-Webhook-Timestamp; tamper: the body changes after signing
//                        {"provider": "twilio", "url": U, "public_url": P, "params": {...}, "tamper": B?}
//                          X-Twilio-Signature: base64 HMAC-SHA1 with --twilio-token over P (the URL
//                          Twilio was given) + every param name and value sorted by name; form body
//   GET  /_fake/sendgrid-key  {"public_key": base64 DER SubjectPublicKeyInfo}: what SendGrid shows
//   POST /_fake/reset   forget requests, counters and script
//   GET  /_fake/requests  every request: {method, path, headers, body, key, status, problem}
//   GET  /_fake/stats     {requests, by_status, accepted, accepted_keys, duplicate_accepts,
//                          tokens_issued, distinct_bearer_tokens, max_requests_per_key,
//                          connections, goaways, refused_streams}
// The key of a request (for the statistics only) is its Idempotency-Key header, else apns-id, else
// apns-collapse-id, else SendGrid's custom_args.send_id, else FCM's android.notification.tag.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const http2 = require('http2');
const https = require('https');
const querystring = require('querystring');

const known = new Set(['port-file', 'h2', 'tls-cert', 'tls-key', 'delay-ms', 'no-record', 'twilio-sid',
  'twilio-token', 'sendgrid-key', 'fcm-credentials', 'token-ttl', 'apns-key', 'apns-key-id', 'apns-team-id',
  'apns-topic']);
const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (!a.startsWith('--')) continue;
  const name = a.slice(2);
  // An option the fake does not know (the --idempotent of old, say) is an error, not a silent no-op.
  if (!known.has(name)) {
    console.error(`provider_fake: unknown option --${name}`);
    process.exit(2);
  }
  const next = process.argv[i + 1];
  if (next === undefined || next.startsWith('--')) {
    args[name] = true;
  } else {
    args[name] = next;
    i++;
  }
}
if (!args['port-file']) {
  console.error('provider_fake: --port-file is required');
  process.exit(2);
}
const defaultDelay = Number(args['delay-ms'] || 0);
const record = !args['no-record'];
const tokenTtl = Number(args['token-ttl'] || 3600);

let fcm = null;
if (args['fcm-credentials']) {
  const sa = JSON.parse(fs.readFileSync(args['fcm-credentials'], 'utf8'));
  fcm = {sa, publicKey: crypto.createPublicKey(sa.private_key)};
}
let apns = null;
if (args['apns-key']) {
  apns = {
    publicKey: crypto.createPublicKey(fs.readFileSync(args['apns-key'], 'utf8')),
    keyId: args['apns-key-id'],
    teamId: args['apns-team-id'],
    topic: args['apns-topic'],
  };
}

let state;
function reset() {
  state = {
    requests: [],
    count: 0,
    byStatus: {},
    accepted: 0,
    acceptedKeys: new Map(),  // key -> first answer
    duplicateAccepts: 0,
    perKey: new Map(),  // key -> requests seen
    tokens: new Set(),
    tokensIssued: 0,
    bearers: new Set(),
    script: {rules: [], fail_first: null, delay_ms: null, delay_first: null, goaway_after: null},
    seq: 0,
    connections: 0,
    goaways: 0,
    refusedStreams: 0,
  };
}
reset();

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

// Verifies a compact JWS; returns {header, claims} or throws with the reason.
function verifyJwt(token, alg, publicKey) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new Error('not a JWT');
  const header = b64urlJson(parts[0]);
  const claims = b64urlJson(parts[1]);
  if (header.alg !== alg) throw new Error(`alg ${header.alg}, expected ${alg}`);
  const data = Buffer.from(parts[0] + '.' + parts[1]);
  const sig = Buffer.from(parts[2], 'base64url');
  const ok = alg === 'RS256' ?
      crypto.verify('sha256', data, publicKey, sig) :
      crypto.verify('sha256', data, {key: publicKey, dsaEncoding: 'ieee-p1363'}, sig);
  if (!ok) throw new Error('bad signature');
  return {header, claims};
}

function json(status, body, headers) {
  return {status, body: JSON.stringify(body), headers: Object.assign({'content-type': 'application/json'}, headers || {})};
}

function keyOf(req) {
  const h = req.headers;
  if (h['idempotency-key']) return String(h['idempotency-key']);
  if (h['apns-id']) return String(h['apns-id']);
  if (h['apns-collapse-id']) return String(h['apns-collapse-id']);
  if (req.json && req.json.personalizations && req.json.personalizations[0] &&
      req.json.personalizations[0].custom_args && req.json.personalizations[0].custom_args.send_id) {
    return String(req.json.personalizations[0].custom_args.send_id);
  }
  const android = req.json && req.json.message && req.json.message.android;
  if (android && android.notification && android.notification.tag) return String(android.notification.tag);
  return '';
}

// ---- the services ----

function twilio(req) {
  const m = req.path.match(/^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/);
  if (!m) return null;
  if (req.method !== 'POST') return json(405, {code: 20004, message: 'Method not allowed', status: 405});
  const auth = String(req.headers.authorization || '');
  const expected = 'Basic ' + Buffer.from(`${args['twilio-sid']}:${args['twilio-token']}`).toString('base64');
  if (auth !== expected || m[1] !== args['twilio-sid']) {
    req.problem = 'auth';
    return json(401, {code: 20003, message: 'Authenticate', status: 401});
  }
  if (!String(req.headers['content-type'] || '').startsWith('application/x-www-form-urlencoded')) {
    req.problem = 'content-type';
    return json(400, {code: 21601, message: 'form encoding expected', status: 400});
  }
  const form = querystring.parse(req.body);
  req.form = form;
  if (!form.To || !/^\+[1-9][0-9]{6,14}$/.test(form.To)) {
    req.problem = 'To';
    return json(400, {code: 21211, message: `The 'To' number ${form.To} is not a valid phone number.`, status: 400});
  }
  if (!form.From && !form.MessagingServiceSid) {
    req.problem = 'From';
    return json(400, {code: 21603, message: "A 'From' phone number is required.", status: 400});
  }
  if (!form.Body) {
    req.problem = 'Body';
    return json(400, {code: 21602, message: 'Message body is required.', status: 400});
  }
  const sid = 'SM' + crypto.randomBytes(16).toString('hex');
  return json(201, {sid, status: 'queued', to: form.To, from: form.From || null, body: form.Body,
                    num_segments: '1', account_sid: m[1]});
}

function sendgrid(req) {
  if (req.path !== '/v3/mail/send') return null;
  if (req.method !== 'POST') return json(405, {errors: [{message: 'method not allowed'}]});
  if (String(req.headers.authorization || '') !== `Bearer ${args['sendgrid-key']}`) {
    req.problem = 'auth';
    return json(401, {errors: [{field: null, message: 'The provided authorization grant is invalid, expired, or revoked'}]});
  }
  const b = req.json;
  const errors = [];
  const to = b && b.personalizations && b.personalizations[0] && b.personalizations[0].to &&
      b.personalizations[0].to[0] && b.personalizations[0].to[0].email;
  if (!to || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(to)) {
    errors.push({field: 'personalizations.0.to.0.email', message: 'Does not contain a valid address.'});
  }
  if (!b || !b.from || !b.from.email) errors.push({field: 'from.email', message: 'The from email is required.'});
  if (!b || !b.subject) errors.push({field: 'subject', message: 'The subject is required.'});
  if (!b || !Array.isArray(b.content) || b.content.length === 0) {
    errors.push({field: 'content', message: 'Content is required.'});
  } else if (b.content.length > 1 && b.content[0].type !== 'text/plain') {
    errors.push({field: 'content.0.type', message: 'text/plain must come first'});
  }
  if (errors.length) {
    req.problem = errors.map((e) => e.field).join(',');
    return json(400, {errors});
  }
  return {status: 202, body: '', headers: {'x-message-id': crypto.randomBytes(11).toString('base64url')}};
}

function oauthToken(req) {
  if (req.path !== '/token') return null;
  const form = querystring.parse(req.body);
  if (form.grant_type !== 'urn:ietf:params:oauth:grant-type:jwt-bearer' || !form.assertion) {
    req.problem = 'grant';
    return json(400, {error: 'unsupported_grant_type'});
  }
  try {
    const {claims} = verifyJwt(form.assertion, 'RS256', fcm.publicKey);
    const now = Math.floor(Date.now() / 1000);
    if (claims.iss !== fcm.sa.client_email) throw new Error('iss');
    if (!String(claims.scope || '').includes('firebase.messaging')) throw new Error('scope');
    if (!String(claims.aud || '').endsWith('/token')) throw new Error('aud');
    if (!(claims.exp > now && claims.iat <= now + 60)) throw new Error('exp/iat');
  } catch (e) {
    req.problem = 'jwt: ' + e.message;
    return json(400, {error: 'invalid_grant', error_description: 'Invalid JWT Signature.'});
  }
  const token = 'ya29.fake-' + crypto.randomBytes(12).toString('hex');
  state.tokens.add(token);
  state.tokensIssued++;
  return json(200, {access_token: token, expires_in: tokenTtl, token_type: 'Bearer'});
}

function fcmSend(req) {
  const m = req.path.match(/^\/v1\/projects\/([^/]+)\/messages:send$/);
  if (!m) return null;
  const auth = String(req.headers.authorization || '');
  const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
  if (!state.tokens.has(token)) {
    req.problem = 'auth';
    return json(401, {error: {code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED'}});
  }
  state.bearers.add(token);
  if (m[1] !== fcm.sa.project_id) {
    req.problem = 'project';
    return json(403, {error: {code: 403, message: 'SenderId mismatch', status: 'PERMISSION_DENIED',
                              details: [{'@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'SENDER_ID_MISMATCH'}]}});
  }
  const msg = req.json && req.json.message;
  if (!msg || !msg.token || !msg.notification) {
    req.problem = 'message';
    return json(400, {error: {code: 400, message: 'The registration token is not a valid FCM registration token',
                              status: 'INVALID_ARGUMENT',
                              details: [{'@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'INVALID_ARGUMENT'}]}});
  }
  if (msg.data) {
    for (const v of Object.values(msg.data)) {
      if (typeof v !== 'string') {
        req.problem = 'data';
        return json(400, {error: {code: 400, message: 'Invalid value at message.data', status: 'INVALID_ARGUMENT'}});
      }
    }
  }
  return json(200, {name: `projects/${m[1]}/messages/${Date.now()}${state.seq++}`});
}

// apns-push-type values Apple documents.
const apnsPushTypes = new Set(['alert', 'background', 'location', 'voip', 'complication', 'fileprovider', 'mdm',
  'liveactivity', 'pushtotalk', 'widgets']);

function apnsSend(req) {
  const m = req.path.match(/^\/3\/device\/([0-9a-fA-F]+)$/);
  if (!m) {
    if (req.path.startsWith('/3/device/')) return json(400, {reason: 'BadDeviceToken'});
    return null;
  }
  if (req.method !== 'POST') return json(405, {reason: 'MethodNotAllowed'});
  const auth = String(req.headers.authorization || '');
  if (!auth.startsWith('bearer ')) {
    req.problem = 'auth';
    return json(403, {reason: 'MissingProviderToken'});
  }
  try {
    const {header, claims} = verifyJwt(auth.slice(7), 'ES256', apns.publicKey);
    if (header.kid !== apns.keyId) throw new Error('kid');
    if (claims.iss !== apns.teamId) throw new Error('iss');
    const age = Math.floor(Date.now() / 1000) - claims.iat;
    if (!(age >= -60 && age < 3600)) throw new Error('iat');
  } catch (e) {
    req.problem = 'jwt: ' + e.message;
    return json(403, {reason: 'InvalidProviderToken'});
  }
  state.bearers.add(auth.slice(7));
  if (req.headers['apns-topic'] !== apns.topic) {
    req.problem = 'topic';
    return json(400, {reason: 'DeviceTokenNotForTopic'});
  }
  // apns-id is optional (Apple makes one up) and only echoed: no deduplication by it.
  let id = String(req.headers['apns-id'] || '');
  if (id && !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(id)) {
    req.problem = 'apns-id';
    return json(400, {reason: 'BadMessageId'});
  }
  if (!id) id = crypto.randomUUID().toUpperCase();
  const pushType = req.headers['apns-push-type'] === undefined ? 'alert' : String(req.headers['apns-push-type']);
  if (!apnsPushTypes.has(pushType)) {
    req.problem = 'push-type';
    return json(400, {reason: 'InvalidPushType'});
  }
  const priority = req.headers['apns-priority'] === undefined ? '10' : String(req.headers['apns-priority']);
  if (!['10', '5', '1'].includes(priority) || (pushType === 'background' && priority !== '5')) {
    req.problem = 'priority';
    return json(400, {reason: 'BadPriority'});
  }
  const collapse = req.headers['apns-collapse-id'];
  if (collapse !== undefined && Buffer.byteLength(String(collapse)) > 64) {
    req.problem = 'collapse-id';
    return json(400, {reason: 'BadCollapseId'});
  }
  const limit = pushType === 'voip' ? 5120 : 4096;
  if (Buffer.byteLength(req.body) > limit) {
    req.problem = 'payload-size';
    return json(413, {reason: 'PayloadTooLarge'});
  }
  if (!req.json || !req.json.aps) {
    req.problem = 'payload';
    return json(400, {reason: 'PayloadEmpty'});
  }
  return {status: 200, body: '', headers: {'apns-id': id}};
}

function generic(req) {
  // Anything else that POSTs: the benchmark's plain endpoint.
  if (req.method === 'POST') return json(200, {id: `msg-${state.seq++}`});
  return json(404, {error: 'not found'});
}

// ---- request handling ----

function scripted(req, key) {
  const s = state.script;
  const text = req.path + '\n' + req.body;
  for (const rule of s.rules) {
    if (rule.times === 0) continue;
    if (rule.match && !text.includes(rule.match)) continue;
    if (rule.times > 0) rule.times--;
    return rule;
  }
  if (s.fail_first && key) {
    const seen = state.perKey.get(key) || 0;
    if (seen <= s.fail_first.count) return s.fail_first;
  }
  return null;
}

function answer(req) {
  if (req.path === '/_fake/reset') {
    reset();
    return json(200, {ok: true});
  }
  if (req.path === '/_fake/script') {
    const s = JSON.parse(req.body || '{}');
    state.script = {rules: s.rules || [], fail_first: s.fail_first || null,
                    delay_ms: s.delay_ms === undefined ? null : s.delay_ms,
                    delay_first: s.delay_first || null,
                    goaway_after: s.goaway_after === undefined ? null : s.goaway_after};
    return json(200, {ok: true});
  }
  if (req.path === '/_fake/requests') return json(200, state.requests);
  if (req.path === '/_fake/sendgrid-key') {
    return json(200, {public_key: webhookKeys.publicKey.export({type: 'spki', format: 'der'}).toString('base64')});
  }
  if (req.path === '/_fake/stats') {
    let maxPerKey = 0;
    for (const n of state.perKey.values()) maxPerKey = Math.max(maxPerKey, n);
    return json(200, {
      requests: state.count,
      by_status: state.byStatus,
      accepted: state.accepted,
      accepted_keys: state.acceptedKeys.size,
      duplicate_accepts: state.duplicateAccepts,
      tokens_issued: state.tokensIssued,
      distinct_bearer_tokens: state.bearers.size,
      max_requests_per_key: maxPerKey,
      connections: state.connections,
      goaways: state.goaways,
      refused_streams: state.refusedStreams,
    });
  }
  try {
    req.json = req.body && String(req.headers['content-type'] || '').includes('json') ? JSON.parse(req.body) : null;
  } catch (e) {
    req.problem = 'json';
    return json(400, {error: 'malformed JSON'});
  }
  const key = keyOf(req);
  req.key = key;
  if (key) state.perKey.set(key, (state.perKey.get(key) || 0) + 1);
  const rule = scripted(req, key);
  if (rule) {
    const body = typeof rule.body === 'string' ? rule.body : JSON.stringify(rule.body || {});
    return {status: rule.status || 500, body, headers: Object.assign({'content-type': 'application/json'}, rule.headers || {})};
  }
  let res = null;
  if (fcm) res = oauthToken(req) || fcmSend(req);
  if (!res && apns) res = apnsSend(req);
  if (!res && args['twilio-sid']) res = twilio(req);
  if (!res && args['sendgrid-key']) res = sendgrid(req);
  if (!res) res = generic(req);
  if (res.status >= 200 && res.status < 300 && key && req.path !== '/token') {
    if (state.acceptedKeys.has(key)) {
      state.duplicateAccepts++;
    } else {
      state.acceptedKeys.set(key, res);
    }
  }
  return res;
}

// ---- webhooks the fake sends, signed as the real service signs them ----

const webhookKeys = crypto.generateKeyPairSync('ec', {namedCurve: 'prime256v1'});

function sendWebhook(spec, respond) {
  let body;
  const headers = {};
  if (spec.provider === 'sendgrid') {
    body = JSON.stringify(spec.events || []);
    const timestamp = String(spec.timestamp !== undefined ? spec.timestamp : Math.floor(Date.now() / 1000));
    const signer = crypto.createSign('sha256');
    signer.update(timestamp + body);
    headers['content-type'] = 'application/json';
    headers['x-twilio-email-event-webhook-signature'] = signer.sign(webhookKeys.privateKey).toString('base64');
    headers['x-twilio-email-event-webhook-timestamp'] = timestamp;
  } else if (spec.provider === 'twilio') {
    const params = spec.params || {};
    const names = Object.keys(params).sort();
    let data = spec.public_url;
    for (const n of names) data += n + params[n];
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers['x-twilio-signature'] = crypto.createHmac('sha1', String(args['twilio-token'] || ''))
        .update(Buffer.from(data, 'utf8')).digest('base64');
    body = querystring.stringify(params);
  } else {
    respond(json(400, {error: 'provider must be sendgrid or twilio'}));
    return;
  }
  if (spec.tamper) body = body.replace(/delivered/, 'bounce').replace(/START/, 'STOP') + (spec.provider === 'twilio' ? '&x=1' : ' ');
  const url = new URL(spec.url);
  const out = http.request({host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'POST',
                            headers: Object.assign({'content-length': Buffer.byteLength(body)}, headers)}, (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => respond(json(200, {status: res.statusCode, body: Buffer.concat(chunks).toString('utf8')})));
  });
  out.on('error', (e) => respond(json(502, {error: e.message})));
  out.end(body);
}

function handle(method, path, headers, body, respond) {
  if (path === '/_fake/webhook') {
    try {
      sendWebhook(JSON.parse(body || '{}'), respond);
    } catch (e) {
      respond(json(400, {error: e.message}));
    }
    return;
  }
  const req = {method, path: path.split('?')[0], headers, body};
  const res = answer(req);
  const control = req.path.startsWith('/_fake/');
  if (!control) {
    state.count++;
    state.byStatus[res.status] = (state.byStatus[res.status] || 0) + 1;
    if (res.status >= 200 && res.status < 300 && req.path !== '/token') state.accepted++;
    if (record) {
      state.requests.push({method, path: req.path, headers, body, key: req.key || '', status: res.status,
                           problem: req.problem || '', response: res.body || ''});
    }
  }
  let delay = control ? 0 : (state.script.delay_ms !== null ? state.script.delay_ms : defaultDelay);
  const first = state.script.delay_first;
  if (!control && first && req.key && (state.perKey.get(req.key) || 0) <= first.count) delay = first.delay_ms;
  if (delay > 0) {
    setTimeout(() => respond(res), delay);
  } else {
    respond(res);
  }
}

function http1Handler(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    handle(req.method, req.url, req.headers, Buffer.concat(chunks).toString('utf8'), (r) => {
      if (res.destroyed) return;
      res.writeHead(r.status, r.headers);
      res.end(r.body);
    });
  });
}

let server;
let control = null;  // with --h2 or TLS, the /_fake/ API is served over plain HTTP/1.1 on a second port
if (args.h2) {
  // TLS with ALPN "h2", as APNs serves, when given a certificate; else h2c with prior knowledge.
  server = args['tls-cert'] ?
      http2.createSecureServer({cert: fs.readFileSync(args['tls-cert']), key: fs.readFileSync(args['tls-key'])}) :
      http2.createServer();
  server.on('stream', (stream, headers) => {
    const session = stream.session;
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      // After our GOAWAY, a stream above its last stream id was never processed: refuse it, so the
      // client knows it may send it again (on a new connection).
      if (session.pvGoawayLast !== undefined && stream.id > session.pvGoawayLast) {
        state.refusedStreams++;
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      const plain = {};
      for (const [k, v] of Object.entries(headers)) if (!k.startsWith(':')) plain[k] = v;
      handle(headers[':method'], headers[':path'], plain, Buffer.concat(chunks).toString('utf8'), (res) => {
        if (stream.destroyed) return;
        stream.respond(Object.assign({':status': res.status}, res.headers));
        stream.end(res.body);
      });
      session.pvHandled = (session.pvHandled || 0) + 1;
      session.pvMaxStream = Math.max(session.pvMaxStream || 0, stream.id);
      const after = state.script.goaway_after;
      if (after !== null && session.pvGoawayLast === undefined && session.pvHandled >= after) {
        state.script.goaway_after = null;  // one GOAWAY per script: the retries find a calm server
        session.pvGoawayLast = session.pvMaxStream;
        state.goaways++;
        // Sent once the answers above are on their way (after the delayed ones, too).
        const delay = state.script.delay_ms !== null ? state.script.delay_ms : defaultDelay;
        setTimeout(() => {
          if (!session.destroyed) {
            session.goaway(http2.constants.NGHTTP2_NO_ERROR, session.pvGoawayLast,
                           Buffer.from(JSON.stringify({reason: 'Shutdown'})));
          }
        }, delay);
      }
    });
    stream.on('error', () => {});
  });
} else {
  server = args['tls-cert'] ?
      https.createServer({cert: fs.readFileSync(args['tls-cert']), key: fs.readFileSync(args['tls-key'])}, http1Handler) :
      http.createServer(http1Handler);
  server.keepAliveTimeout = 60000;
  server.headersTimeout = 65000;
  server.maxConnections = 4096;
}
server.on(args.h2 ? 'session' : 'connection', () => state.connections++);
server.on('error', (e) => {
  console.error('provider_fake:', e.message);
  process.exit(1);
});
function listening() {
  if (control) {
    fs.writeFileSync(args['port-file'] + '.control', String(control.address().port) + '\n');
  }
  const tmp = args['port-file'] + '.tmp';
  fs.writeFileSync(tmp, String(server.address().port) + '\n');
  fs.renameSync(tmp, args['port-file']);
}
if (args.h2 || args['tls-cert']) {
  control = http.createServer(http1Handler);
  control.listen(0, '127.0.0.1', () => server.listen(0, '127.0.0.1', listening));
} else {
  server.listen(0, '127.0.0.1', listening);
}
process.on('SIGTERM', () => process.exit(0));
