// Generates the benchmark's ES256 signing key, its JWKS and one access token shaped like a
// Supabase user token, into bench/work/. Usage: node keys.js <supabase-url>
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const jwt = require('jsonwebtoken');

const supabaseUrl = process.argv[2];
if (!supabaseUrl) throw new Error('usage: node keys.js <supabase-url>');
const dir = path.join(__dirname, 'work');
fs.mkdirSync(dir, { recursive: true });

const kid = 'bench-es256';
const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig', key_ops: ['verify'], ext: true };
const now = Math.floor(Date.now() / 1000);
const claims = {
  iss: `${supabaseUrl}/auth/v1`,
  aud: 'authenticated',
  exp: now + 24 * 3600,
  iat: now,
  sub: crypto.randomUUID(),
  email: 'bench@example.test',
  phone: '',
  app_metadata: { provider: 'email', providers: ['email'] },
  user_metadata: {},
  role: 'authenticated',
  aal: 'aal1',
  amr: [{ method: 'password', timestamp: now }],
  session_id: crypto.randomUUID(),
  is_anonymous: false,
  user_role: 'patient',
  user_roles: ['patient'],
};
const token = jwt.sign(claims, privateKey, { algorithm: 'ES256', keyid: kid });
fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
fs.writeFileSync(path.join(dir, 'token'), token);
fs.writeFileSync(path.join(dir, 'sub'), claims.sub);
