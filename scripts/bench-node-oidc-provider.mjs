// The reference server for `BENCH_COMPARE=1 scripts/bench-load`: node-oidc-provider 9
// with one confidential client, the clientCredentials and resourceIndicators features,
// and JWT access tokens signed RS256 with a fresh RSA-2048 key (the same work guise
// does per client-credentials grant, minus the audit log: node-oidc-provider keeps
// nothing for JWT access tokens). One process, in-memory, loopback only.
//
// Usage: node bench-node-oidc-provider.mjs PORT CLIENT_ID CLIENT_SECRET AUDIENCE
// with NODE_PATH-free resolution: run it from a directory whose node_modules holds
// oidc-provider (scripts/bench-load installs it into its cache directory).
import { generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const [port, clientId, clientSecret, audience] = process.argv.slice(2);
if (!port || !clientId || !clientSecret || !audience) {
  console.error('usage: bench-node-oidc-provider.mjs PORT CLIENT_ID CLIENT_SECRET AUDIENCE');
  process.exit(2);
}
const require = createRequire(pathToFileURL(`${process.cwd()}/`));
const { default: Provider } = await import(pathToFileURL(require.resolve('oidc-provider')).href);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'bench' };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  jwks: { keys: [jwk] },
  ttl: { ClientCredentials: () => 86400 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read:things',
        audience,
        accessTokenTTL: 86400,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});
provider.listen(Number(port), '127.0.0.1', () => console.error(`node-oidc-provider listening on ${port}`));
