// A real OpenID provider for the SSO tests: panva/oidc-provider (OpenID Certified) on loopback.
// Usage: node provider.mjs <config.json>. The tests write config.json: the port, the issuer, the
// clients, the signing keys (private JWKs, so that a test can also sign what the provider would not)
// and the path of an accounts file that is read again at every sign-in, so that a test can take a
// group away at the provider. Sign-in is the library's own login page (devInteractions): any password,
// the login is the account id. Consent is implied for the configured clients (a first-party app).
import fs from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const accounts = () => JSON.parse(fs.readFileSync(config.accounts, 'utf8'));

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  pkce: { methods: ['S256'], required: () => true },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false, // the requested scopes' claims in the ID token, as Okta's and Keycloak's groups claims are
  ttl: { IdToken: config.id_token_ttl_s ?? 300 },
  async findAccount(ctx, id) {
    const account = accounts()[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
  async loadExistingGrant(ctx) {
    const { Grant } = ctx.oidc.provider;
    const existing = ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (existing) return Grant.find(existing);
    const grant = new Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
});
provider.proxy = false;
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(config.port, '127.0.0.1', () => console.log(`listening on ${config.issuer}`));
