#!/usr/bin/env node
/**
 * npm runs this instead of its own node-gyp when a dependency compiles a native addon
 * (better-sqlite3, when no prebuilt binary can be downloaded): see .npmrc.
 *
 * node-gyp needs the Node.js C headers. Without `nodedir` it downloads them from
 * nodejs.org, which fails on a machine that reaches only the npm registry. Node installs
 * (official tarballs, distribution and NodeSource packages, nvm) ship the headers of
 * exactly the running version beside the binary, in PREFIX/include/node; when they are
 * there and their version is this Node's, node-gyp is pointed at them. Otherwise nothing
 * changes and node-gyp downloads as before. An explicit nodedir always wins.
 */
'use strict';
const { existsSync, readFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

/** PREFIX when PREFIX/include/node holds the headers of this very Node version. */
function installedHeaders() {
  const prefix = dirname(dirname(process.execPath));
  const include = join(prefix, 'include', 'node');
  if (!existsSync(join(include, 'common.gypi')) || !existsSync(join(include, 'node_version.h'))) return undefined;
  const text = readFileSync(join(include, 'node_version.h'), 'utf8');
  const version = ['MAJOR', 'MINOR', 'PATCH'].map((part) => new RegExp(`#define NODE_${part}_VERSION (\\d+)`).exec(text)?.[1]).join('.');
  return version === process.versions.node ? prefix : undefined;
}

/** The node-gyp that ships with the npm running this install. */
function npmNodeGyp() {
  const candidates = [];
  if (process.env.npm_execpath) candidates.push(join(dirname(dirname(process.env.npm_execpath)), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed as a package of its own
  }
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error('node-gyp not found: run npm ci with npm (npm_execpath is not set)');
  return found;
}

if (!process.env.npm_config_nodedir) {
  const prefix = installedHeaders();
  if (prefix) {
    process.env.npm_config_nodedir = prefix;
    console.error(`drawbridge: compiling against the Node.js ${process.versions.node} headers installed in ${prefix}/include/node`);
  }
}
require(npmNodeGyp());
