/**
 * Opening streams. Data then flows in binary stream frames (src/protocol/frames.ts) under
 * the stream id chosen by the side that opened it on that link: the client on its link, the
 * hub on an agent's link. The hub maps one to the other, so an id means nothing on any other
 * link.
 */
import { z } from 'zod';
import { defineMessage } from '../control.js';

const streamId = z.number().int().min(1).max(0xffffffff);

export const StreamOpen = defineMessage({
  type: 'stream.open',
  from: 'client',
  to: ['hub'],
  capability: 'streams',
  summary: 'The client asks for a stream to a device under a stream id of its choosing; the reply comes once the edge has connected to the target.',
  body: z.strictObject({ stream: streamId, device: z.string().max(200) }),
  result: z.strictObject({
    session: z.string().regex(/^[0-9a-f]{32}$/),
    device: z.string(),
    target: z.string().nullable(),
    grantEndsAt: z.string().nullable(),
  }),
});

export const StreamConnect = defineMessage({
  type: 'stream.connect',
  from: 'hub',
  to: ['agent'],
  capability: 'streams',
  summary: "The hub asks the edge to connect a device's configured target for a client that has joined; the reply says whether it did.",
  body: z.strictObject({ stream: streamId, device: z.string().max(63), session: z.string().regex(/^[0-9a-f]{32}$/) }),
  result: z.strictObject({}),
});
