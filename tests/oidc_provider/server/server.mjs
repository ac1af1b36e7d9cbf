#!/usr/bin/env node
// oidc-harness/server.mjs
//
// A small, independent OAuth 2.0 authorization server for integration tests,
// built on node-oidc-provider 9.x (npm `oidc-provider`, ESM only).
//
// What it offers (all at the token endpoint, POST {issuer}/token):
//   * client_credentials            (any client auth method, e.g. private_key_jwt)
//   * urn:ietf:params:oauth:grant-type:jwt-bearer      (RFC 7523, custom grant)
//   * urn:ietf:params:oauth:grant-type:token-exchange  (RFC 8693, custom grant)
//   * DPoP (RFC 9449) on all three grants, optionally demanding server nonces
//   * optional mTLS sender constraint / tls_client_auth, reading the client
//     certificate from a header set by a TLS-terminating proxy
//   * token introspection (RFC 7662) at {issuer}/token/introspection and
//     revocation (RFC 7009) at {issuer}/token/revocation
//   * discovery at {issuer}/.well-known/openid-configuration and
//     {issuer}/.well-known/oauth-authorization-server, keys at {issuer}/jwks
//
// Usage:
//   node server.mjs --config /path/config.json [--port 0] [--watch-stdin]
//   node server.mjs /path/config.json [port]
//   OIDC_HARNESS_CONFIG=/path/config.json OIDC_HARNESS_PORT=0 node server.mjs
//
// Port 0 (the default) picks a free port. When the server listens, exactly ONE
// line of JSON is written to stdout:   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// Everything else (oidc-provider notices/warnings, debug output) goes to stderr.
// With --watch-stdin (or OIDC_HARNESS_WATCH_STDIN=1) the server exits when its
// stdin is closed, so a test runner that dies does not leave it behind.
//
// The configuration file format is documented in README.md (next to this file)
// and in parseConfig() below. Everything is kept in memory; nothing is written
// to disk.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

// --------------------------------------------------------------------------
// stdout hygiene. oidc-provider prints its "NOTICE" lines with console.info,
// i.e. to STDOUT. The test harness reads stdout for the ready line, so route
// console.info/console.log to stderr before oidc-provider is loaded (that is
// why oidc-provider and jose are imported dynamically below, not statically:
// static ESM imports are evaluated before any code of this module runs).
// --------------------------------------------------------------------------
const writeStdout = (line) => process.stdout.write(`${line}\n`);
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const { default: Provider, errors } = await import('oidc-provider');
const jose = await import('jose'); // a dependency of oidc-provider (hoisted by npm)
// Grant helpers. The built-in grants receive these bound to the provider;
// custom grants registered with provider.registerGrantType() receive only
// `ctx`, so import the same module. NOTE: internal path, not covered by semver.
const grantHelpers = await import('oidc-provider/lib/helpers/grants.js');
// The bundled in-memory adapter class; by default it stores into an LRU capped
// at ~1000-2000 entries (tokens, replay-detection jti records, ...), so a long
// test session would see old tokens turn inactive. We hand it an unbounded
// store instead (see ExpiringStore). Internal path, not covered by semver.
const { default: MemoryAdapter } = await import('oidc-provider/lib/adapters/memory_adapter.js');

const GT_JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const GT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TT_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const TT_JWT = 'urn:ietf:params:oauth:token-type:jwt';
const TT_ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

// --------------------------------------------------------------------------
// Command line / environment
// --------------------------------------------------------------------------
function parseArgs(argv) {
  const out = { positional: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (a === '--config' || a === '-c') out.config = argv[++i];
    else if (a.startsWith('--config=')) out.config = a.slice(9);
    else if (a === '--port' || a === '-p') out.port = argv[++i];
    else if (a.startsWith('--port=')) out.port = a.slice(7);
    else if (a === '--watch-stdin') out.watchStdin = true;
    else if (a === '--help' || a === '-h') out.help = true;
    else out.positional.push(a);
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
if (args.help) {
  process.stderr.write('usage: node server.mjs --config FILE [--port N] [--watch-stdin]\n');
  process.exit(0);
}
const configPath = args.config ?? args.positional[0] ?? process.env.OIDC_HARNESS_CONFIG;
const portArg = args.port ?? args.positional[1] ?? process.env.OIDC_HARNESS_PORT ?? '0';
const watchStdin = args.watchStdin || process.env.OIDC_HARNESS_WATCH_STDIN === '1';
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`invalid port: ${portArg}\n`);
  process.exit(2);
}

// --------------------------------------------------------------------------
// Configuration file
// --------------------------------------------------------------------------
/**
 * Reads the JSON configuration. All keys are optional:
 * {
 *   "clients": [ <oidc-provider client metadata>, ... ],     // static clients
 *   "trustedIssuers": {                                       // for jwt-bearer / token-exchange
 *     "<iss>": { "jwks": {"keys": [...]},                     // PUBLIC keys of that issuer
 *                "grants": ["jwt-bearer", "token-exchange"],  // default: both
 *                "audience": "..." | ["..."],                 // token-exchange only: expected aud of
 *                                                             //   subject/actor tokens (unset = not checked)
 *                "algorithms": ["RS256", ...],                // default: all asymmetric
 *                "clients": ["client-id", ...] }              // optional allow-list of clients
 *   },
 *   "resourceServers": {                                      // resource indicators (RFC 8707)
 *     "<resource URI>": { "scope": "read write", "accessTokenFormat": "jwt"|"opaque",
 *                         "audience": "...", "accessTokenTTL": 300 }
 *   },
 *   "defaultResource": "<resource URI>",   // used when a request has no `resource`
 *   "scopes": ["read"],                    // extra scopes allowed WITHOUT a resource indicator
 *   "ttl": { "AccessToken": 3600, "ClientCredentials": 600 },
 *   "clockTolerance": 15,
 *   "jwks": {"keys": [...]},               // PRIVATE signing keys; default: fresh RS256+ES256 keys
 *   "enabledJWA": { ... },                 // passed through (e.g. dPoPSigningAlgValues)
 *   "debug": false,                        // log every grant/introspection error to stderr
 *   "features": {
 *     "clientCredentials": true, "introspection": true, "revocation": true,
 *     "jwtBearer": true | {"enabled": true, "requireJti": false},
 *     "tokenExchange": true | {"enabled": true,          // subject/actor tokens are always JWTs
 *                              "subjectTokenTypes": [...],  // default: ...:jwt, ...:id_token, ...:access_token
 *                              "actorTokenTypes": [...]},   // default: same as subjectTokenTypes
 *     "dPoP": {"enabled": true, "nonceSecret": "random"|"<64 hex chars>"|"<43 base64url chars>",
 *              "requireNonce": true (default when nonceSecret is set), "allowReplay": false},
 *     "mTLS": {"enabled": false, "certificateHeader": "x-client-cert",
 *              "certificateBoundAccessTokens": true, "tlsClientAuth": true,
 *              "selfSignedTlsClientAuth": true}
 *   }
 * }
 */
function parseConfig(file) {
  if (!file) return {};
  return JSON.parse(fs.readFileSync(path.resolve(file), 'utf8'));
}

function featureFlag(value, defaultEnabled) {
  if (value === undefined || value === null) return { enabled: defaultEnabled };
  if (typeof value === 'boolean') return { enabled: value };
  return { enabled: true, ...value };
}

function decodeSecret(value) {
  // DPoP nonceSecret must be a 32-byte Buffer.
  if (value === true || value === 'random') return crypto.randomBytes(32);
  if (typeof value === 'string' && /^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex');
  if (typeof value === 'string') {
    const buf = Buffer.from(value, 'base64url');
    if (buf.length === 32) return buf;
  }
  throw new TypeError('features.dPoP.nonceSecret must be "random", 64 hex chars or 32 bytes base64url');
}

async function defaultSigningKeys() {
  // Fresh keys per process; avoids the "development-only signing keys" warning
  // and gives JWT access tokens a real, fetchable key at {issuer}/jwks.
  const keys = [];
  for (const alg of ['RS256', 'ES256']) {
    const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
    const jwk = await jose.exportJWK(privateKey);
    jwk.alg = alg;
    jwk.use = 'sig';
    jwk.kid = await jose.calculateJwkThumbprint(jwk);
    keys.push(jwk);
  }
  return { keys };
}

// --------------------------------------------------------------------------
// mTLS helpers: the client certificate comes from a request header set by a
// TLS-terminating proxy. Accepted encodings: PEM (optionally URL-encoded as
// nginx's $ssl_client_escaped_cert does) and RFC 9440 `Client-Cert`
// (`:base64(DER):`).
// --------------------------------------------------------------------------
function parseCertificateHeader(raw) {
  if (!raw) return undefined;
  let value = raw.trim();
  try {
    if (value.startsWith(':') && value.endsWith(':')) {
      return new crypto.X509Certificate(Buffer.from(value.slice(1, -1), 'base64'));
    }
    if (value.includes('%')) value = decodeURIComponent(value);
    if (!value.includes('-----BEGIN')) {
      return new crypto.X509Certificate(Buffer.from(value, 'base64'));
    }
    return new crypto.X509Certificate(value);
  } catch {
    return undefined;
  }
}

function normalizeDn(dn) {
  return new Set(String(dn).split(/[\n,]/).map((s) => s.trim().replace(/\s*=\s*/, '=')).filter(Boolean));
}

function sanValues(cert, kind) {
  // X509Certificate.subjectAltName: 'DNS:a.example, IP Address:127.0.0.1, email:x@y, URI:https://...'
  const prefix = { dns: 'DNS:', ip: 'IP Address:', email: 'email:', uri: 'URI:' }[kind];
  return (cert.subjectAltName ?? '').split(/,\s*/).filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
}

// --------------------------------------------------------------------------
// Build the provider
// --------------------------------------------------------------------------
const config = parseConfig(configPath);
const feat = config.features ?? {};
const clockTolerance = config.clockTolerance ?? 15;
const ttl = config.ttl ?? {};
const trustedIssuers = config.trustedIssuers ?? {};
const resourceServers = config.resourceServers ?? {};
const debugErrors = !!config.debug || process.env.OIDC_HARNESS_DEBUG === '1';

const clientCredentials = featureFlag(feat.clientCredentials, true);
const introspection = featureFlag(feat.introspection, true);
const revocation = featureFlag(feat.revocation, true);
const jwtBearer = featureFlag(feat.jwtBearer, true);
const tokenExchange = featureFlag(feat.tokenExchange, true);
const dPoPConf = featureFlag(feat.dPoP, true);
const mTLSConf = featureFlag(feat.mTLS, false);

const dPoP = { enabled: dPoPConf.enabled, allowReplay: !!dPoPConf.allowReplay };
if (dPoPConf.enabled && dPoPConf.nonceSecret !== undefined && dPoPConf.nonceSecret !== null) {
  dPoP.nonceSecret = decodeSecret(dPoPConf.nonceSecret);
  // With a nonceSecret alone the server only *offers* nonces (when a proof's
  // iat is not recent). requireNonce makes it *demand* one on every request.
  const requireNonce = dPoPConf.requireNonce ?? true;
  dPoP.requireNonce = () => requireNonce;
}

const mTLS = { enabled: mTLSConf.enabled };
if (mTLSConf.enabled) {
  const header = (mTLSConf.certificateHeader ?? 'x-client-cert').toLowerCase();
  Object.assign(mTLS, {
    certificateBoundAccessTokens: mTLSConf.certificateBoundAccessTokens ?? true,
    tlsClientAuth: mTLSConf.tlsClientAuth ?? true,
    selfSignedTlsClientAuth: mTLSConf.selfSignedTlsClientAuth ?? true,
    // Must return the client certificate (PEM string or X509Certificate) or undefined.
    getCertificate: (ctx) => parseCertificateHeader(ctx.get(header)),
    // The proxy is trusted to have verified the chain (tls_client_auth).
    certificateAuthorized: () => true,
    certificateSubjectMatches: (ctx, property, expected) => {
      const cert = parseCertificateHeader(ctx.get(header));
      if (!cert) return false;
      switch (property) {
        case 'tls_client_auth_subject_dn': {
          const a = normalizeDn(cert.subject);
          const b = normalizeDn(expected);
          return a.size === b.size && [...a].every((x) => b.has(x));
        }
        case 'tls_client_auth_san_dns': return sanValues(cert, 'dns').includes(expected);
        case 'tls_client_auth_san_ip': return sanValues(cert, 'ip').includes(expected);
        case 'tls_client_auth_san_email': return sanValues(cert, 'email').includes(expected);
        case 'tls_client_auth_san_uri': return sanValues(cert, 'uri').includes(expected);
        default: return false;
      }
    },
  });
}

// Unbounded key/value store with per-entry expiry; same get/set/delete
// interface as oidc-provider's internal LRU (set(key, value, { maxAge: ms })).
class ExpiringStore {
  #map = new Map();

  #writes = 0;

  get(key) {
    const entry = this.#map.get(key);
    if (!entry) return undefined;
    if (entry.expiry !== undefined && entry.expiry <= Date.now()) {
      this.#map.delete(key);
      return undefined;
    }
    return entry.value;
  }

  has(key) { return this.get(key) !== undefined; }

  set(key, value, { maxAge } = {}) {
    const expiry = typeof maxAge === 'number' && Number.isFinite(maxAge) ? Date.now() + maxAge : undefined;
    this.#map.set(key, { value, expiry });
    this.#writes += 1;
    if (this.#writes % 1000 === 0) this.#sweep();
    return this;
  }

  delete(key) { return this.#map.delete(key); }

  #sweep() {
    const now = Date.now();
    for (const [key, { expiry }] of this.#map) {
      if (expiry !== undefined && expiry <= now) this.#map.delete(key);
    }
  }
}
const store = new ExpiringStore();

// extra claims (e.g. `act` for token exchange) attached to a token instance
// by a grant handler; returned from the extraTokenClaims hook when saving.
const tokenExtras = new WeakMap();

function findResourceServer(identifier) {
  if (Object.hasOwn(resourceServers, identifier)) return resourceServers[identifier];
  return undefined;
}

const clientAuthMethods = ['none', 'client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt'];
if (mTLSConf.enabled) clientAuthMethods.push('tls_client_auth', 'self_signed_tls_client_auth');

const providerConfig = {
  // adapter: a factory (model name -> adapter instance). Passing our own also
  // silences the "development-only in-memory adapter" warning.
  adapter: (model) => new MemoryAdapter(model, store, clockTolerance),
  clients: config.clients ?? [],
  jwks: config.jwks ?? await defaultSigningKeys(),
  // Cookies are only used by the interactive (browser) endpoints, but the
  // provider warns/uses weak defaults without keys.
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  clockTolerance,
  // Only needed by interactive flows/userinfo; define it to avoid the
  // "you MUST change findAccount" warning if anything calls it.
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  // No browser clients here: never allow CORS (also silences a notice).
  clientBasedCORS: () => false,
  // PKCE only matters for authorization_code; keep the 9.x default semantics
  // (required for public clients) without the default function.
  pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
  scopes: ['openid', 'offline_access', ...(config.scopes ?? [])],
  clientAuthMethods,
  ...(config.enabledJWA ? { enabledJWA: config.enabledJWA } : {}),
  ttl: {
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl.AccessToken ?? 3600,
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl.ClientCredentials ?? 600,
    AuthorizationCode: 60,
    DeviceCode: 600,
    BackchannelAuthenticationRequest: 600,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
  extraTokenClaims: async (ctx, token) => tokenExtras.get(token),
  // Errors are JSON even for clients sending `Accept: text/html` (the default
  // renders an HTML page for those).
  renderError: async (ctx, out) => { ctx.type = 'json'; ctx.body = out; },
  features: {
    devInteractions: { enabled: false }, // no login UI in this harness
    clientCredentials: { enabled: clientCredentials.enabled },
    introspection: {
      enabled: introspection.enabled,
      // any authenticated (non-"none") client may introspect any token;
      // public clients only their own.
      allowedPolicy: async (ctx, client, token) => client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
    },
    revocation: {
      enabled: revocation.enabled,
      allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
    },
    dPoP,
    mTLS,
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf ?? config.defaultResource,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        const rs = findResourceServer(resourceIndicator);
        if (!rs) throw new errors.InvalidTarget();
        return {
          scope: rs.scope ?? '',
          ...(rs.audience ? { audience: rs.audience } : {}),
          ...(rs.accessTokenTTL ? { accessTokenTTL: rs.accessTokenTTL } : {}),
          accessTokenFormat: rs.accessTokenFormat ?? 'opaque',
          ...(rs.jwt ? { jwt: rs.jwt } : {}),
        };
      },
    },
  },
};

// --------------------------------------------------------------------------
// Shared pieces of the custom grants
// --------------------------------------------------------------------------
function invalidGrant(description) {
  // errors.InvalidGrant always answers "grant request is invalid" and hides
  // the detail; CustomOIDCProviderError exposes a useful error_description.
  return new errors.CustomOIDCProviderError('invalid_grant', description);
}

function trustedIssuerFor(iss, grant, clientId) {
  if (typeof iss !== 'string' || !Object.hasOwn(trustedIssuers, iss)) return undefined;
  const entry = trustedIssuers[iss];
  const grants = entry.grants ?? ['jwt-bearer', 'token-exchange'];
  if (!grants.includes(grant)) return undefined;
  if (entry.clients && !entry.clients.includes(clientId)) return undefined;
  return entry;
}

const jwksCache = new Map();
function keySetFor(iss) {
  if (!jwksCache.has(iss)) jwksCache.set(iss, jose.createLocalJWKSet(trustedIssuers[iss].jwks));
  return jwksCache.get(iss);
}

/**
 * Verifies a JWT issued by a trusted issuer. Throws `makeError(description)`.
 */
async function verifyTrustedJwt(token, { grant, clientId, audience, requireExp, makeError, label }) {
  if (typeof token !== 'string' || !token) throw makeError(`${label} is missing`);
  let unverified;
  try {
    unverified = jose.decodeJwt(token);
  } catch {
    throw makeError(`${label} is not a JWT`);
  }
  const entry = trustedIssuerFor(unverified.iss, grant, clientId);
  if (!entry) throw makeError(`${label} iss is not a trusted issuer`);
  let result;
  try {
    result = await jose.jwtVerify(token, keySetFor(unverified.iss), {
      issuer: unverified.iss,
      algorithms: entry.algorithms ?? ASYMMETRIC_ALGS,
      clockTolerance,
      ...(audience ? { audience } : {}),
      requiredClaims: requireExp ? ['exp'] : [],
    });
  } catch (err) {
    throw makeError(`${label} verification failed: ${err.message}`);
  }
  const { payload } = result;
  // RFC 7523 §3 (and any useful token exchange): sub is REQUIRED.
  if (typeof payload.sub !== 'string' || !payload.sub) {
    throw makeError(`${label} must contain a sub (subject) claim`);
  }
  return { payload, header: result.protectedHeader, entry };
}

/**
 * Resolves resource/scope exactly like the built-in client_credentials grant:
 * one resource indicator (or defaultResource) -> that resource server's
 * format/audience/TTL and its scopes; no resource -> only `scopes` from the
 * configuration survive.
 */
async function applyResourceAndScope(ctx, helpers, token) {
  const resourceServersFound = await helpers.resolveRequestedResources(ctx);
  const scopes = [...helpers.validateClientScope(ctx)];
  const { 0: resourceServer, length } = resourceServersFound;
  if (resourceServer) {
    if (length !== 1) {
      throw new errors.InvalidTarget('only a single resource indicator value is supported for this grant type');
    }
    token.resourceServer = resourceServer; // sets aud and the token format
    token.scope = scopes.filter((s) => resourceServer.scopes.has(s)).join(' ') || undefined;
  } else {
    token.scope = scopes.join(' ') || undefined;
  }
  return resourceServer;
}

/** DPoP / mTLS binding, same order as the built-in grants. */
async function applySenderConstraints(ctx, helpers, token) {
  const dpopProof = await helpers.validateDpop(ctx); // may throw use_dpop_nonce
  const cert = helpers.checkMtlsCert(ctx);
  if (cert) token.setThumbprint('x5t', cert);
  if (dpopProof) {
    await helpers.checkDpopReplay(ctx, dpopProof, ctx.oidc.client.clientId);
    token.setThumbprint('jkt', dpopProof.thumbprint);
  }
  helpers.checkDpopRequired(ctx, dpopProof);
}

async function saveAndRespond(ctx, token, extra = {}) {
  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();
  ctx.body = {
    access_token: value,
    token_type: token.tokenType, // "DPoP" when bound with DPoP, else "Bearer"
    expires_in: token.expiration,
    ...(token.scope ? { scope: token.scope } : {}),
    ...extra,
  };
}

function registerCustomGrants(provider) {
  const helpers = Object.fromEntries(
    Object.entries(grantHelpers).map(([name, fn]) => [name, fn.bind(undefined, provider)]),
  );

  // ---------------- RFC 7523 JWT bearer grant ----------------
  if (jwtBearer.enabled) {
    const requireJti = !!jwtBearer.requireJti;
    // Handler signature in 9.x: async (ctx) => void, set ctx.body.
    // ctx.oidc.client is the already-authenticated client, ctx.oidc.params
    // holds only the parameters declared below (+ client auth params).
    async function jwtBearerHandler(ctx) {
      const { client, params } = ctx.oidc;
      // DPoP first: a use_dpop_nonce answer must not burn the assertion's jti.
      await helpers.validateDpop(ctx);
      const tokenEndpoint = ctx.oidc.urlFor('token');
      const { payload } = await verifyTrustedJwt(params.assertion, {
        grant: 'jwt-bearer',
        clientId: client.clientId,
        // RFC 7523 §3: aud MUST identify the AS: its issuer or token endpoint URL.
        audience: [provider.issuer, tokenEndpoint],
        requireExp: true,
        makeError: invalidGrant,
        label: 'assertion',
      });
      if (requireJti && !payload.jti) throw invalidGrant('assertion must contain a jti claim');

      const token = new provider.AccessToken({
        accountId: payload.sub, // -> `sub` in introspection / JWT access token
        client,
        gty: 'jwt-bearer',
      });
      await applyResourceAndScope(ctx, helpers, token);
      await applySenderConstraints(ctx, helpers, token);

      if (payload.jti) {
        // Replay protection until exp (+ clock tolerance), kept in the adapter.
        // Done last so a request failing for another reason does not burn it.
        const unique = await provider.ReplayDetection.unique(
          `jwt-bearer:${payload.iss}`, String(payload.jti), payload.exp + clockTolerance,
        );
        if (!unique) throw invalidGrant('assertion jti has already been used');
      }
      await saveAndRespond(ctx, token);
    }
    provider.registerGrantType(GT_JWT_BEARER, jwtBearerHandler, ['assertion', 'scope', 'resource'], ['resource']);
  }

  // ---------------- RFC 8693 token exchange ----------------
  if (tokenExchange.enabled) {
    const subjectTokenTypes = tokenExchange.subjectTokenTypes ?? [TT_JWT, TT_ID_TOKEN, TT_ACCESS_TOKEN];
    const actorTokenTypes = tokenExchange.actorTokenTypes ?? subjectTokenTypes;
    // RFC 8693 §2.2.2: invalid/unacceptable subject or actor tokens -> invalid_request.
    const invalidRequest = (d) => new errors.InvalidRequest(d);

    async function tokenExchangeHandler(ctx) {
      const { client, params } = ctx.oidc;
      await helpers.validateDpop(ctx); // result is cached per request
      if (!params.subject_token) throw invalidRequest('missing required parameter subject_token');
      if (!params.subject_token_type) throw invalidRequest('missing required parameter subject_token_type');
      if (!subjectTokenTypes.includes(params.subject_token_type)) {
        throw invalidRequest(`unsupported subject_token_type ${params.subject_token_type}`);
      }
      if (params.requested_token_type && params.requested_token_type !== TT_ACCESS_TOKEN) {
        throw invalidRequest(`unsupported requested_token_type ${params.requested_token_type}`);
      }
      if (params.actor_token && !params.actor_token_type) {
        throw invalidRequest('actor_token_type is required when actor_token is present');
      }
      if (!params.actor_token && params.actor_token_type) {
        throw invalidRequest('actor_token_type must not be present without actor_token');
      }
      if (params.actor_token && !actorTokenTypes.includes(params.actor_token_type)) {
        throw invalidRequest(`unsupported actor_token_type ${params.actor_token_type}`);
      }

      const verifyOpts = (label, iss) => ({
        grant: 'token-exchange',
        clientId: client.clientId,
        audience: trustedIssuers[iss]?.audience,
        requireExp: false,
        makeError: invalidRequest,
        label,
      });
      const issOf = (t) => { try { return jose.decodeJwt(t).iss; } catch { return undefined; } };

      const subject = await verifyTrustedJwt(params.subject_token, verifyOpts('subject_token', issOf(params.subject_token)));
      let act;
      if (params.actor_token) {
        const actor = await verifyTrustedJwt(params.actor_token, verifyOpts('actor_token', issOf(params.actor_token)));
        // RFC 8693 §4.1: the act claim identifies the current actor; a prior
        // delegation chain (act inside the subject token) is nested below it.
        act = { sub: actor.payload.sub, iss: actor.payload.iss };
        if (subject.payload.act) act.act = subject.payload.act;
      } else if (subject.payload.act) {
        act = subject.payload.act;
      }

      // RFC 8693 `audience` (logical names) -> a configured resource server
      // (by identifier or audience) becomes the resource; any other single
      // value becomes the `aud` of an opaque token.
      let audiences = params.audience;
      if (audiences !== undefined && !Array.isArray(audiences)) audiences = [audiences];
      let plainAudience;
      if (audiences?.length) {
        if (audiences.length > 1) throw new errors.InvalidTarget('only a single audience value is supported');
        const [aud] = audiences;
        const match = Object.entries(resourceServers).find(([id, rs]) => id === aud || rs.audience === aud);
        if (match) {
          if (params.resource === undefined) params.resource = match[0];
          else if ([params.resource].flat()[0] !== match[0]) {
            throw new errors.InvalidTarget('audience and resource identify different resource servers');
          }
        } else {
          plainAudience = aud;
        }
      }

      const token = new provider.AccessToken({
        accountId: subject.payload.sub,
        client,
        gty: 'token-exchange',
      });
      const rs = await applyResourceAndScope(ctx, helpers, token);
      if (plainAudience) {
        if (rs) throw new errors.InvalidTarget('audience and resource identify different resource servers');
        token.setAudience(plainAudience);
      }
      if (act) tokenExtras.set(token, { act });
      await applySenderConstraints(ctx, helpers, token);
      await saveAndRespond(ctx, token, { issued_token_type: TT_ACCESS_TOKEN });
    }
    provider.registerGrantType(
      GT_TOKEN_EXCHANGE,
      tokenExchangeHandler,
      ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
        'requested_token_type', 'audience', 'resource', 'scope'],
      ['audience', 'resource'], // parameters that may be repeated
    );
  }
}

// --------------------------------------------------------------------------
// Start: bind the socket first (port 0 -> free port), then build the provider
// with the final issuer, then attach it as the request handler.
// --------------------------------------------------------------------------
const t0 = performance.now();
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const boundPort = server.address().port;
const issuer = `http://127.0.0.1:${boundPort}`;

let provider;
try {
  provider = new Provider(issuer, providerConfig);
  registerCustomGrants(provider);
  // Static clients are only validated lazily (at their first request, where a
  // metadata mistake surfaces as e.g. 400 invalid_redirect_uri). Validate them
  // now so a bad config file fails fast, after the custom grant types are
  // registered (their names must be known for client `grant_types`).
  for (const { client_id: clientId } of config.clients ?? []) {
    const client = await provider.Client.find(clientId);
    if (!client) throw new Error(`client ${clientId} not found`);
  }
} catch (err) {
  const detail = err.error_description ? `${err.error}: ${err.error_description}` : (err.stack || err);
  process.stderr.write(`failed to configure provider: ${detail}\n`);
  process.exit(1);
}

provider.on('server_error', (ctx, err) => {
  process.stderr.write(`server_error ${ctx.method} ${ctx.path}: ${err.stack || err}\n`);
});
if (debugErrors) {
  for (const ev of ['grant.error', 'introspection.error', 'revocation.error']) {
    provider.on(ev, (ctx, err) => {
      process.stderr.write(`${ev}: ${err.error} ${err.error_description ?? ''} ${err.error_detail ?? ''}\n`);
    });
  }
}

server.on('request', provider.callback());

const shutdown = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (watchStdin) {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.resume();
}

process.stderr.write(`oidc-harness ready: ${(process.uptime() * 1000).toFixed(0)} ms since process start, `
  + `${(performance.now() - t0).toFixed(0)} ms for listen + provider setup\n`);
writeStdout(JSON.stringify({ issuer, port: boundPort }));
