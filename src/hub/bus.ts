/**
 * The message bus seam. A stream request must reach whichever hub node holds the
 * device's control link. With one node that is a method call on the local registry; the
 * scale-out engine (NATS) implements the same interface with a subject per device, so
 * the API and the relay do not change.
 */
import type { HubMessage } from '../protocol/messages.js';
import type { DeviceRegistry } from './device-registry.js';

export type StreamOpenMessage = Extract<HubMessage, { type: 'stream.open' }>;

export interface DeviceBus {
  /** Delivers a stream request to the node holding `device`'s link; false when no node does. */
  requestStream(device: string, message: StreamOpenMessage): Promise<boolean>;
  close(): Promise<void>;
}

export class LocalDeviceBus implements DeviceBus {
  constructor(private readonly registry: DeviceRegistry) {}

  async requestStream(device: string, message: StreamOpenMessage): Promise<boolean> {
    const link = this.registry.get(device);
    if (!link) return false;
    link.send(message);
    return true;
  }

  async close(): Promise<void> {}
}
