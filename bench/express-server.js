// The comparison peer: GET /v1/auth/ping in Express + jsonwebtoken, with the same checks the
// companion makes (ES256 key chosen by kid from the project's JWKS, algorithm pinned,
// audience "authenticated", issuer <SUPABASE_URL>/auth/v1, 10 s clock tolerance, role and a
// UUID sub) and the same envelope. It also serves the JWKS at Supabase's well-known path, so
// the companion under test fetches its key from here (once, at its first request).
//
// Usage: PORT=… SUPABASE_URL=http://127.0.0.1:PORT node express-server.js
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const express = require('express');
const jwt = require('jsonwebtoken');

const port = Number(process.env.PORT || 3000);
const issuer = `${process.env.SUPABASE_URL}/auth/v1`;
const jwks = JSON.parse(fs.readFileSync(path.join(__dirname, 'work', 'jwks.json'), 'utf8'));
const keys = new Map(jwks.keys.map((k) => [k.kid, crypto.createPublicKey({ key: k, format: 'jwk' })]));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const app = express();
app.disable('x-powered-by');

function fail(res, status, code, message) {
  res.status(status).json({ success: false, error: { code, message, details: null } });
}

function authenticate(req, res, next) {
  const header = req.get('authorization') || '';
  const [scheme, token] = header.split(' ');
  if (!/^bearer$/i.test(scheme || '') || !token) return fail(res, 401, 'missing_token', 'bearer token required');
  const decoded = jwt.decode(token, { complete: true });
  if (!decoded) return fail(res, 401, 'malformed_token', 'not a JWT');
  const key = keys.get(decoded.header.kid);
  if (!key) return fail(res, 401, 'unknown_kid', 'unknown kid');
  try {
    const claims = jwt.verify(token, key, {
      algorithms: ['ES256'],
      audience: 'authenticated',
      issuer,
      clockTolerance: 10,
    });
    if (claims.role !== 'authenticated' || !UUID.test(claims.sub || '')) {
      return fail(res, 401, 'invalid_claims', 'not a user token');
    }
    req.user = claims;
    return next();
  } catch (e) {
    return fail(res, 401, 'invalid_token', e.message);
  }
}

app.get('/auth/v1/.well-known/jwks.json', (_req, res) => res.json(jwks));
app.get('/v1/auth/ping', authenticate, (req, res) => {
  res.json({ success: true, data: { pong: true, sub: req.user.sub }, meta: {} });
});
app.get('/v1/ping', (_req, res) => res.json({ success: true, data: { pong: true }, meta: {} }));

app.listen(port, '127.0.0.1', () => console.log(`listening http://127.0.0.1:${port}`));
