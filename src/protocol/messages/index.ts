/** Every control message type; importing this module registers them all. */
export * from './link.js';
export * from './streams.js';
export * from './secrets.js';
export * from './telemetry.js';
