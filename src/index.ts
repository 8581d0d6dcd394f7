/**
 * Drawbridge as a library: the CLI is a thin layer over these functions, and the tests
 * and the demo use the same ones.
 */
export { startHub, type HubHandle, type HubOptions } from './hub/hub.js';
export { parseHubConfig, loadHubConfigFile, defaultHubConfig, type HubConfig } from './hub/config.js';
export { startAgent, type AgentHandle, type AgentOptions } from './agent/agent.js';
export { enrollDevice, type EnrollOptions, type EnrollResult } from './agent/enroll.js';
export { loadAgentConfig, type AgentConfig } from './agent/config.js';
export { HubClient } from './client/hub-client.js';
export { openTunnel, runProxy, type TunnelHandle, type TunnelOptions } from './client/tunnel.js';
export { runDemo } from './demo/demo.js';
export { DrawbridgeError, ERRORS, type ErrorCode } from './errors.js';
export type { Store } from './store/store.js';
export { SqliteStore } from './store/sqlite/sqlite-store.js';
