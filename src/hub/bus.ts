/**
 * The cluster seam. A stream request must reach whichever hub node holds the device's edge
 * link. With one node that is a lookup in the local registry; the scale-out engine (NATS)
 * implements the same interface with presence per device and a hub-to-hub link as the
 * session's device leg, so the API and the relay do not change.
 */
import type { Link } from '../transport/link.js';
import type { EdgeRegistry } from './edge-registry.js';

export interface DeviceLocation {
  /** 'local': the edge link is on this node. */
  node: 'local';
  /** The link that carries the device's streams. */
  link: Link;
  target: string;
  edgeId: string;
}

export interface DeviceBus {
  /** Where `device` is online, or undefined when no node holds its edge link. */
  locate(device: string): DeviceLocation | undefined;
  close(): Promise<void>;
}

export class LocalDeviceBus implements DeviceBus {
  constructor(private readonly registry: EdgeRegistry) {}

  locate(device: string): DeviceLocation | undefined {
    const attached = this.registry.get(device);
    return attached ? { node: 'local', link: attached.edge.link, target: attached.target, edgeId: attached.edge.edge.id } : undefined;
  }

  async close(): Promise<void> {}
}
