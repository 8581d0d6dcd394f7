/** Prometheus metrics of edge security monitoring, on the hub's own registry. */
import { Counter, Gauge, type Registry } from 'prom-client';

export class MonitorMetrics {
  readonly alertsOpen: Gauge<'severity' | 'status'>;
  readonly findingsOpen: Gauge<'severity'>;
  readonly telemetryBytes: Counter<'type'>;
  readonly telemetryMessages: Counter<'type'>;
  readonly telemetryRejected: Counter<'reason'>;
  readonly events: Counter;
  readonly eventsDroppedOnEdges: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.alertsOpen = new Gauge({ name: 'drawbridge_alerts_open', help: 'Unresolved security alerts by severity and status (open, acked)', labelNames: ['severity', 'status'], registers });
    this.findingsOpen = new Gauge({ name: 'drawbridge_findings_open', help: 'Open findings (recommendations) that are not muted, by severity', labelNames: ['severity'], registers });
    this.telemetryBytes = new Counter({ name: 'drawbridge_telemetry_bytes_received_total', help: 'Bytes of telemetry message bodies received from edges, by message type', labelNames: ['type'], registers });
    this.telemetryMessages = new Counter({ name: 'drawbridge_telemetry_messages_total', help: 'Telemetry messages received from edges, by type', labelNames: ['type'], registers });
    this.telemetryRejected = new Counter({
      name: 'drawbridge_telemetry_rejected_total',
      help: 'Telemetry refused: malformed, oversized, unknown_edge, edge_disabled, gap, hash_mismatch',
      labelNames: ['reason'],
      registers,
    });
    this.events = new Counter({ name: 'drawbridge_telemetry_events_total', help: 'Security events received from edges (aggregated events count as their hit count)', registers });
    this.eventsDroppedOnEdges = new Gauge({ name: 'drawbridge_telemetry_events_dropped_on_edges', help: 'Events edges report they dropped (offline queue full), summed over connected edges', registers });
  }
}
