/** Prometheus metrics, one registry per hub instance (several hubs may share a process in tests). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class HubMetrics {
  readonly registry = new Registry();
  readonly connectedDevices = new Gauge({ name: 'drawbridge_connected_devices', help: 'Virtual devices attached to an authenticated edge link', registers: [this.registry] });
  readonly connectedEdges = new Gauge({ name: 'drawbridge_connected_edges', help: 'Edges (agents) with an authenticated link', registers: [this.registry] });
  readonly clientLinks = new Gauge({ name: 'drawbridge_client_links', help: 'Open client links (connect, proxy, ssh)', registers: [this.registry] });
  readonly activeStreams = new Gauge({ name: 'drawbridge_active_streams', help: 'Streams open and relaying', registers: [this.registry] });
  readonly pendingStreams = new Gauge({ name: 'drawbridge_pending_streams', help: 'Streams requested and not yet open', registers: [this.registry] });
  readonly streamsTotal = new Counter({ name: 'drawbridge_streams_total', help: 'Streams by outcome', labelNames: ['outcome'], registers: [this.registry] });
  readonly bytesRelayed = new Counter({ name: 'drawbridge_bytes_relayed_total', help: 'Bytes relayed, by direction', labelNames: ['direction'], registers: [this.registry] });
  readonly streamSetupSeconds = new Histogram({
    name: 'drawbridge_stream_setup_seconds',
    help: 'Time from stream request to the edge connected to the target',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly auditHeadBehind = new Gauge({ name: 'drawbridge_audit_head_behind', help: '1 when the database lacks the audit head this hub recorded (records removed or rewritten)', registers: [this.registry] });
  readonly connectionsClosed = new Counter({
    name: 'drawbridge_connections_closed_total',
    help: 'Connections the hub closed before a request: over_total_cap, over_address_cap, first_request_timeout',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly authFailures = new Counter({ name: 'drawbridge_auth_failures_total', help: 'Failed authentications by kind', labelNames: ['kind'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'drawbridge_hub_' });
  }
}
