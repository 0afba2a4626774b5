// A real OpenID Provider for the tests: oidc-provider with a static client
// list and test accounts, and a login and consent form of its own (the
// development interactions accept any login; these check the password).
// Configuration comes as JSON in KLUIS_TEST_OIDC:
//   {issuer, port, clients: [{client_id, client_secret, redirect_uris}],
//    accounts: [{login, password, sub, email, email_verified}], code_ttl}
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { URLSearchParams } from 'node:url';

import Provider from 'oidc-provider';

const config = JSON.parse(process.env.KLUIS_TEST_OIDC);
const byLogin = new Map(config.accounts.map((a) => [a.login, a]));
const bySub = new Map(config.accounts.map((a) => [a.sub, a]));

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: [signingKey] },
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // The e-mail claims go into the ID token itself, where Kluis reads them.
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => {
    const account = bySub.get(id);
    if (!account) return undefined;
    return {
      accountId: id,
      claims: async () => ({
        sub: id, email: account.email, email_verified: account.email_verified, name: account.login,
      }),
    };
  },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { AuthorizationCode: config.code_ttl ?? 60, AccessToken: 3600, IdToken: 3600, Grant: 3600, Session: 3600, Interaction: 600 },
  cookies: { keys: [randomBytes(16).toString('hex')] },
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!DOCTYPE html><html><head><title>Test IdP</title></head><body>${body}</body></html>`);
};
const loginForm = (uid, error) => `<h1>Sign in</h1>${error ? `<p class="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<input name="login" autocomplete="username"><input name="password" type="password">
<button type="submit">Sign in</button></form>`;
const consentForm = (uid, client) => `<h1>Allow ${escape(client)}?</h1>
<form method="post" action="/interaction/${escape(uid)}/confirm"><button type="submit">Allow</button></form>`;

const readForm = (req) => new Promise((resolve, reject) => {
  let data = '';
  req.on('data', (chunk) => { data += chunk; if (data.length > 10000) reject(new Error('too large')); });
  req.on('end', () => resolve(new URLSearchParams(data)));
  req.on('error', reject);
});

async function interaction(req, res) {
  const [, , uid, step] = new URL(req.url, config.issuer).pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 400, '<p>wrong interaction</p>');
  if (req.method === 'GET') {
    if (details.prompt.name === 'login') return page(res, 200, loginForm(uid));
    return page(res, 200, consentForm(uid, details.params.client_id));
  }
  const form = await readForm(req);
  if (step === 'login') {
    const account = byLogin.get(form.get('login'));
    if (!account || account.password !== form.get('password')) {
      return page(res, 200, loginForm(uid, 'Wrong login or password.'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
  }
  if (step === 'confirm') {
    const { prompt: { details: missing }, grantId, session, params } = details;
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
  }
  return page(res, 404, '<p>no such step</p>');
}

const callback = provider.callback();
http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => page(res, 500, `<p>${escape(err.message)}</p>`));
  } else {
    callback(req, res);
  }
}).listen(config.port, '127.0.0.1', () => console.log(`oidc provider on ${config.issuer}`));
