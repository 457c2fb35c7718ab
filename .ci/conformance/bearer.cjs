// Preloaded into the MCP conformance runner (node --require, via NODE_OPTIONS) by
// .ci/mcp-conformance.sh: adds `Authorization: Bearer $CONFORMANCE_BEARER` to every HTTP request
// the runner sends to $CONFORMANCE_TARGET (host:port), since the runner has no option to send a
// header and mcp-server-alipay never serves /mcp without its token.
//
// It hooks the two ways the runner reaches a server, below anything the runner records:
//   - undici's global dispatcher, which both Node's fetch (the MCP SDK transport, the raw
//     stateless and SSE scenarios) and undici.request (dns-rebinding-protection) go through;
//   - http.request / http.get (http-header-validation sends raw requests to keep header casing).
// Nothing else changes: Host, Origin, the method, the body and every other header go out as the
// runner wrote them, to the URL it was given. A request that already carries Authorization is
// left alone, and requests to any other host:port get no token.
'use strict';

const http = require('node:http');

const token = process.env.CONFORMANCE_BEARER;
const target = (process.env.CONFORMANCE_TARGET || '').toLowerCase();
const modules = process.env.CONFORMANCE_NODE_MODULES;
if (!token || !target || !modules) {
  throw new Error('bearer.cjs needs CONFORMANCE_BEARER, CONFORMANCE_TARGET and CONFORMANCE_NODE_MODULES');
}
const value = `Bearer ${token}`;

function isTarget(hostname, port) {
  if (!hostname) return false;
  const host = String(hostname).toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const shown = host.includes(':') ? `[${host}]` : host;
  return `${shown}:${port || 80}` === target;
}

function hasAuthorization(headers) {
  if (!headers) return false;
  if (Array.isArray(headers)) {
    return headers.some((h, i) =>
      Array.isArray(h) ? String(h[0]).toLowerCase() === 'authorization'
        : i % 2 === 0 && String(h).toLowerCase() === 'authorization');
  }
  if (typeof headers[Symbol.iterator] === 'function' && typeof headers !== 'string') {
    for (const [k] of headers) if (String(k).toLowerCase() === 'authorization') return true;
    return false;
  }
  return Object.keys(headers).some((k) => k.toLowerCase() === 'authorization');
}

// undici's dispatch options carry headers as an object, a flat [k, v, k, v] array, an array of
// pairs, or an iterable of pairs; answer the same shape with Authorization added.
function withAuthorization(headers) {
  if (hasAuthorization(headers)) return headers;
  if (!headers) return { authorization: value };
  if (Array.isArray(headers)) {
    return headers.length > 0 && Array.isArray(headers[0])
      ? [...headers, ['authorization', value]]
      : [...headers, 'authorization', value];
  }
  if (typeof headers[Symbol.iterator] === 'function') return [...headers, ['authorization', value]];
  return { ...headers, authorization: value };
}

// --- undici (and so fetch) ---------------------------------------------------------------------
const undici = require(require.resolve('undici', { paths: [modules] }));
const dispatcher = undici.getGlobalDispatcher();
const dispatch = dispatcher.dispatch.bind(dispatcher);
dispatcher.dispatch = (opts, handler) => {
  let origin;
  try {
    origin = opts && opts.origin ? new URL(String(opts.origin)) : undefined;
  } catch {
    origin = undefined;
  }
  if (origin && isTarget(origin.hostname, origin.port || (origin.protocol === 'https:' ? 443 : 80))) {
    opts = { ...opts, headers: withAuthorization(opts.headers) };
  }
  return dispatch(opts, handler);
};

// --- node:http -----------------------------------------------------------------------------------
function wrap(original) {
  return function (...args) {
    // (options[, cb]) or (url[, options][, cb]); the runner uses the first form.
    const i = args.findIndex((a) => a && typeof a === 'object' && !(a instanceof URL));
    const opts = i >= 0 ? args[i] : undefined;
    const url = typeof args[0] === 'string' || args[0] instanceof URL ? new URL(String(args[0])) : undefined;
    const hostname = (opts && (opts.hostname || (opts.host || '').replace(/:\d+$/, ''))) || (url && url.hostname);
    const port = (opts && opts.port) || (url && url.port) || 80;
    if (isTarget(hostname, port)) {
      const headers = withAuthorization(opts ? opts.headers : undefined);
      if (i >= 0) args[i] = { ...opts, headers };
      else args.splice(1, 0, { headers });
    }
    return original.apply(this, args);
  };
}
http.request = wrap(http.request);
http.get = wrap(http.get);
