// TEST-ONLY upstream OpenID Provider for watchword's integration tests: panva's certified
// `oidc-provider` on 127.0.0.1, configured from a JSON file written by tests/oidc/plugin.py.
// Never run this anywhere but a test: any password is accepted and the keys sit in a state file.
//
//   node server.mjs <config.json>        (or WW_OIDC_CONFIG=<config.json> node server.mjs)
//
// Config (JSON): { port, clients: [...], accounts: {login: claims}, ttl: {...},
//   state_path, cookie_keys: [...], rotate_keys: bool, rotate_refresh_tokens: bool,
//   clock_tolerance: seconds, expires_with_session: bool }.
//
// State (signing keys, sessions, grants, tokens) is kept in memory and written through to
// `state_path` after every change, so stopping the process (SIGTERM) and starting it again on
// the same port simulates "provider down, then back up" without losing anyone's login.
//
// Prints `oidc-provider ready <issuer>` on stdout when it accepts connections; one JSON line per
// interesting provider event (grant, refresh, revocation, back-channel logout, errors) follows.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import process from 'node:process';

import Provider from 'oidc-provider';

const AUTHZ_CLAIM = 'https://watchword.dev/authz';

const configPath = process.argv[2] ?? process.env.WW_OIDC_CONFIG;
if (!configPath) {
  console.error('usage: node server.mjs <config.json> (or set WW_OIDC_CONFIG)');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const port = Number(config.port);
const issuer = `http://127.0.0.1:${port}`;

function log(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), event, ...fields })}\n`);
}

// ---------------------------------------------------------------- persisted state ---------

const statePath = config.state_path;
let state = { keys: [], store: {} };
if (statePath && existsSync(statePath)) {
  state = JSON.parse(readFileSync(statePath, 'utf8'));
}

function persist() {
  if (!statePath) return;
  const tmp = `${statePath}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, statePath);
}

// An RS256 and an ES256 signing key, each with a `kid`. The first key of an algorithm signs;
// after a rotation the older keys stay in the JWKS (verification of tokens already issued).
function newKeys() {
  const stamp = Date.now().toString(36);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rs256-${stamp}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `es256-${stamp}`, alg: 'ES256', use: 'sig' },
  ];
}

if (state.keys.length === 0) {
  state.keys = newKeys();
  persist();
} else if (config.rotate_keys) {
  state.keys = [...newKeys(), ...state.keys];
  persist();
  log('keys.rotated', { kids: state.keys.map((k) => k.kid) });
}

// A small adapter in the shape of oidc-provider's MemoryAdapter whose store survives restarts
// (it is written through to the state file). Expired entries are dropped on read.
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);

function storeGet(key) {
  const entry = state.store[key];
  if (!entry) return undefined;
  if (entry.expiresAt !== null && entry.expiresAt <= Date.now()) {
    delete state.store[key];
    return undefined;
  }
  return entry.value;
}

function storeSet(key, value, expiresIn) {
  const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : null;
  state.store[key] = { value, expiresAt };
}

class PersistentAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    storeSet(key, payload, expiresIn);
    if (this.model === 'Session') {
      storeSet(`sessionUid:${payload.uid}`, id, expiresIn);
    }
    if (payload.userCode) {
      storeSet(`userCode:${payload.userCode}`, id, expiresIn);
    }
    if (GRANTABLE.has(this.model) && payload.grantId) {
      const members = new Set(storeGet(`grant:${payload.grantId}`) ?? []);
      members.add(key);
      storeSet(`grant:${payload.grantId}`, [...members], null);
    }
    persist();
  }

  async find(id) {
    return storeGet(this.key(id));
  }

  async findByUid(uid) {
    const id = storeGet(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = storeGet(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const entry = state.store[this.key(id)];
    if (entry) {
      entry.value.consumed = Math.floor(Date.now() / 1000);
      persist();
    }
  }

  async destroy(id) {
    delete state.store[this.key(id)];
    persist();
  }

  async revokeByGrantId(grantId) {
    for (const key of storeGet(`grant:${grantId}`) ?? []) {
      delete state.store[key];
    }
    delete state.store[`grant:${grantId}`];
    persist();
  }
}

// ---------------------------------------------------------------- accounts ----------------

// `accounts` maps a login name to claims. The provider's account id is the `sub` claim (the
// login name when `sub` is absent), so ID tokens, userinfo, introspection and logout tokens all
// carry the same `sub`. An unknown login is refused: the authorization ends with
// `error=access_denied` at the client's redirect_uri. Any password is accepted.
const accountsByLogin = new Map();
const accountsBySub = new Map();
for (const [login, claims] of Object.entries(config.accounts ?? {})) {
  const full = { ...claims, sub: claims.sub ?? login };
  accountsByLogin.set(login, full);
  accountsBySub.set(full.sub, full);
}

// An account may carry `userinfo_overrides`: claims that userinfo answers differently from the
// ID token (a provider whose two views disagree), for tests of which one a client believes.
async function findAccount(_ctx, sub) {
  const account = accountsBySub.get(sub);
  if (!account) return undefined;
  const { userinfo_overrides: overrides = {}, ...claims } = account;
  return {
    accountId: sub,
    claims: async (use) => (use === 'userinfo' ? { ...claims, ...overrides } : { ...claims }),
  };
}

// ---------------------------------------------------------------- clients -----------------

function clientMetadata(client) {
  const metadata = {
    client_id: client.client_id,
    redirect_uris: client.redirect_uris ?? [],
    post_logout_redirect_uris: client.post_logout_redirect_uris ?? [],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    // 'web' (the default) accepts http:// redirect URIs for the code flow; only the implicit
    // flow forces https. Stated here so nobody "fixes" it to 'native'.
    application_type: 'web',
    token_endpoint_auth_method: client.token_endpoint_auth_method ?? 'client_secret_basic',
  };
  if (metadata.token_endpoint_auth_method === 'private_key_jwt') {
    metadata.jwks = client.jwks;
  } else {
    metadata.client_secret = client.client_secret;
  }
  if (client.backchannel_logout_uri) {
    // backchannel_logout_uri only has to be a "web" (http or https) URI in client metadata;
    // delivery to 127.0.0.1 needs the `fetch` override below.
    metadata.backchannel_logout_uri = client.backchannel_logout_uri;
    metadata.backchannel_logout_session_required = Boolean(
      client.backchannel_logout_session_required,
    );
  }
  if (client.id_token_signed_response_alg) {
    metadata.id_token_signed_response_alg = client.id_token_signed_response_alg;
  }
  return metadata;
}

// ---------------------------------------------------------------- provider ----------------

const ttl = {
  AccessToken: 300,
  AuthorizationCode: 60,
  IdToken: 300,
  RefreshToken: 86400,
  Grant: 14 * 86400,
  Session: 14 * 86400,
  Interaction: 3600,
  ...config.ttl,
};

const configuration = {
  adapter: PersistentAdapter,
  clients: (config.clients ?? []).map(clientMetadata),
  findAccount,
  jwks: { keys: state.keys },
  // Stable across restarts (written by the fixture), so the user agent's provider cookies stay
  // valid after stop()/start().
  cookies: { keys: config.cookie_keys ?? [randomUUID()] },
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
    authz: [AUTHZ_CLAIM],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups', 'authz'],
  // Claims of the granted scopes go into the ID token too, not only into userinfo.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  ttl,
  clockTolerance: config.clock_tolerance ?? 0,
  // Without `prompt=consent` the provider drops `offline_access` and issues no refresh token;
  // these test clients always get one when they may use the refresh_token grant.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  // A new refresh token on every use (the old one is then consumed; reusing it revokes the
  // whole grant). oidc-provider's default rotates confidential clients' tokens only after 70%
  // of their lifetime.
  rotateRefreshToken: config.rotate_refresh_tokens ?? true,
  // By default here, tokens outlive the provider's browser session (oidc-provider's default ends
  // them with the session unless offline_access was granted). A grant whose tokens do not
  // expire with the session "persists logout": RP-initiated logout does not revoke it.
  // `expires_with_session: true` ties them to the session, and logout then revokes the grant.
  expiresWithSession: async () => Boolean(config.expires_with_session),
  // PKCE (S256 only, oidc-provider 9's only method) for every client, not only public ones.
  pkce: { required: () => true },
  // No consent page: every requested scope and claim is granted at once.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    const grant = grantId
      ? await ctx.oidc.provider.Grant.find(grantId)
      : new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
    const scopes = [...ctx.oidc.requestParamOIDCScopes];
    if (scopes.length) grant.addOIDCScope(scopes.join(' '));
    const claims = [...ctx.oidc.requestParamClaims];
    if (claims.length) grant.addOIDCClaims(claims);
    await grant.save();
    return grant;
  },
  // oidc-provider 9 refuses outgoing requests (back-channel logout tokens, jwks_uri fetches) to
  // special-use addresses such as 127.0.0.0/8 (SSRF protection through the `dispatcher` it
  // passes here). The test receivers live on 127.0.0.1, so drop that dispatcher.
  fetch: (url, options) => {
    const { dispatcher: _ssrfGuard, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
};

const provider = new Provider(issuer, configuration);

// Test control: while the file `token_failure_path` exists, the token endpoint answers with
// the status (and Retry-After) it holds, as a provider that throttles (429) or is down (503).
provider.use(async (ctx, next) => {
  const path = config.token_failure_path;
  if (path && ctx.method === 'POST' && ctx.path === '/token' && existsSync(path)) {
    const failure = JSON.parse(readFileSync(path, 'utf8'));
    log('token.failed_on_purpose', failure);
    ctx.status = failure.status;
    if (failure.retry_after) ctx.set('Retry-After', String(failure.retry_after));
    ctx.type = 'json';
    ctx.body = { error: failure.status === 429 ? 'slow_down' : 'temporarily_unavailable' };
    return;
  }
  await next();
});

// The dev login form accepts any login name; map it to the account's `sub`, or refuse it.
const interactionFinished = provider.interactionFinished.bind(provider);
provider.interactionFinished = async (req, res, result, options) => {
  let outcome = result;
  if (result?.login?.accountId !== undefined) {
    const account = accountsByLogin.get(result.login.accountId);
    if (account) {
      outcome = { ...result, login: { ...result.login, accountId: account.sub } };
    } else {
      log('login.refused', { login: result.login.accountId });
      outcome = { error: 'access_denied', error_description: 'unknown login' };
    }
  }
  return interactionFinished(req, res, outcome, options);
};

for (const name of ['grant.success', 'grant.revoked', 'end_session.success',
  'backchannel.success', 'authorization.success']) {
  provider.on(name, (ctx) => log(name, {
    client_id: ctx?.oidc?.client?.clientId,
    grant_type: ctx?.oidc?.params?.grant_type,
  }));
}
provider.on('backchannel.error', (_ctx, err, client, accountId, sid) => {
  log('backchannel.error', { client_id: client.clientId, sub: accountId, sid, error: String(err) });
});
for (const name of ['server_error', 'grant.error', 'authorization.error', 'end_session.error',
  'revocation.error', 'userinfo.error', 'introspection.error', 'jwks.error',
  'discovery.error', 'interaction.error']) {
  provider.on(name, (_ctx, err) => log(name, { error: String(err), detail: err?.error_detail }));
}

// ---------------------------------------------------------------- serve -------------------

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`oidc-provider ready ${issuer}\n`);
});

function shutdown(signal) {
  log('shutdown', { signal });
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
