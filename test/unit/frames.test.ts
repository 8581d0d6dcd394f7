import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  encodeClose,
  encodeCredit,
  encodeDataHeader,
  encodeEof,
  encodePing,
  encodeReset,
  encodeText,
  FrameDecoder,
  FrameError,
  MAX_DATA_BYTES,
  truncateUtf8,
  type FrameSink,
} from '../../src/protocol/frames.js';

type Event = [string, ...unknown[]];

function recorder(): { sink: FrameSink; events: Event[]; data: Map<number, Buffer[]> } {
  const events: Event[] = [];
  const data = new Map<number, Buffer[]>();
  return {
    events,
    data,
    sink: {
      // Appended in place: with data split at every byte, copying the list each time made
      // this test quadratic (seconds for one 16 KiB frame).
      onData: (id, d) => {
        const chunks = data.get(id) ?? [];
        if (chunks.length === 0) data.set(id, chunks);
        chunks.push(Buffer.from(d));
      },
      onCredit: (id, n) => events.push(['credit', id, n]),
      onEof: (id) => events.push(['eof', id]),
      onReset: (id, reason) => events.push(['reset', id, reason]),
      onText: (text) => events.push(['text', text]),
      onPing: (p) => events.push(['ping', p.toString('hex')]),
      onPong: (p) => events.push(['pong', p.toString('hex')]),
      onClose: (code, reason) => events.push(['close', code, reason]),
    },
  };
}

/** Applies a real RFC 6455 mask to a masked frame built with a zero key. */
function remask(frame: Buffer, key: Buffer): Buffer {
  const out = Buffer.from(frame);
  const len7 = (out[1] as number) & 0x7f;
  const keyAt = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0);
  key.copy(out, keyAt);
  for (let i = keyAt + 4, j = 0; i < out.length; i++, j++) out[i] = (out[i] as number) ^ (key[j & 3] as number);
  return out;
}

function stream(masked: boolean): Buffer {
  const payload = Buffer.alloc(40_000);
  for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
  const first = payload.subarray(0, MAX_DATA_BYTES);
  return Buffer.concat([
    encodeText('{"v":2,"type":"hello"}', masked),
    encodeDataHeader(7, first.length, masked),
    first,
    encodeDataHeader(9, 3, masked),
    Buffer.from('abc'),
    encodeCredit(7, 65536, masked),
    encodeEof(9, masked),
    encodeReset(7, 'TARGET_CLOSED: gone', masked),
    encodePing(Buffer.from('0102', 'hex'), masked),
    encodeClose(1000, 'bye', masked),
  ]);
}

const expected: Event[] = [
  ['text', '{"v":2,"type":"hello"}'],
  ['credit', 7, 65536],
  ['eof', 9],
  ['reset', 7, 'TARGET_CLOSED: gone'],
  ['ping', '0102'],
  ['close', 1000, 'bye'],
];

describe('link frame codec', () => {
  for (const masked of [false, true]) {
    it(`decodes every frame type ${masked ? 'masked (client to hub)' : 'unmasked (hub to client)'}, whole or split at any byte`, () => {
      const bytes = stream(masked);
      for (const step of [bytes.length, 1, 2, 3, 5, 7, 13, 4096, 16384]) {
        const r = recorder();
        const decoder = new FrameDecoder(r.sink, { expectMasked: masked, maxTextBytes: 1024 });
        for (let i = 0; i < bytes.length; i += step) decoder.push(Buffer.from(bytes.subarray(i, i + step)));
        assert.deepEqual(r.events, expected, `step ${step}`);
        assert.equal(Buffer.concat(r.data.get(7) ?? []).length, MAX_DATA_BYTES);
        assert.equal(Buffer.concat(r.data.get(9) ?? []).toString(), 'abc');
        const seven = Buffer.concat(r.data.get(7) ?? []);
        for (let i = 0; i < seven.length; i += 997) assert.equal(seven[i], i & 0xff);
      }
    });
  }

  it('unmasks frames with a real (non-zero) mask key, data split anywhere', () => {
    const key = Buffer.from([0x11, 0x22, 0x33, 0x44]);
    const payload = Buffer.from('the quick brown fox jumps over the lazy dog, twice over');
    const frames = Buffer.concat([remask(Buffer.concat([encodeDataHeader(3, payload.length, true), payload]), key), remask(encodeText('{"a":1}', true), key), remask(encodeCredit(3, 77, true), key)]);
    for (const step of [1, 6, 11, frames.length]) {
      const r = recorder();
      const decoder = new FrameDecoder(r.sink, { expectMasked: true, maxTextBytes: 1024 });
      for (let i = 0; i < frames.length; i += step) decoder.push(Buffer.from(frames.subarray(i, i + step)));
      assert.equal(Buffer.concat(r.data.get(3) ?? []).toString(), payload.toString(), `step ${step}`);
      assert.deepEqual(r.events, [['text', '{"a":1}'], ['credit', 3, 77]]);
    }
  });

  it('hands out DATA as views of the pushed chunk, without reassembly', () => {
    const payload = Buffer.alloc(1000, 7);
    const chunk = Buffer.concat([encodeDataHeader(1, payload.length, false), payload]);
    const pieces: Buffer[] = [];
    const decoder = new FrameDecoder({ ...recorder().sink, onData: (_id, d) => pieces.push(d) }, { expectMasked: false, maxTextBytes: 1024 });
    decoder.push(chunk);
    assert.equal(pieces.length, 1);
    assert.equal((pieces[0] as Buffer).buffer, chunk.buffer, 'the piece shares the chunk memory');
  });

  const violations: [string, Buffer, boolean, number][] = [
    ['an unmasked frame from a client', encodeText('{}', false), true, 1002],
    ['a masked frame from the hub', encodeText('{}', true), false, 1002],
    ['a fragmented message', Buffer.from([0x02, 0x00]), false, 1003],
    ['a continuation frame', Buffer.from([0x80, 0x00]), false, 1003],
    ['reserved bits', Buffer.from([0xc2, 0x00]), false, 1002],
    ['an unknown opcode', Buffer.from([0x83, 0x00]), false, 1003],
    ['a text message over the limit', encodeText('x'.repeat(2000), false), false, 1009],
    ['a DATA frame over the limit', encodeDataHeader(1, MAX_DATA_BYTES + 1, false), false, 1009],
    ['a binary message shorter than a stream header', Buffer.from([0x82, 0x02, 0, 0]), false, 1002],
    ['an unknown stream frame type', Buffer.from([0x82, 0x05, 9, 0, 0, 0, 1]), false, 1003],
    ['a credit of zero', encodeCredit(1, 0, false), false, 1002],
    ['text that is not UTF-8', Buffer.from([0x81, 0x02, 0xc3, 0x28]), false, 1007],
    ['a 64-bit length over 4 GiB', Buffer.from([0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0]), false, 1009],
  ];
  for (const [what, bytes, expectMasked, code] of violations) {
    it(`refuses ${what} with close code ${code}`, () => {
      const decoder = new FrameDecoder(recorder().sink, { expectMasked, maxTextBytes: 1024 });
      assert.throws(() => decoder.push(bytes), (error: unknown) => error instanceof FrameError && error.closeCode === code);
    });
  }

  it('cuts RESET reasons on a character boundary', () => {
    const cut = truncateUtf8('é'.repeat(200), 255);
    assert.equal(cut.length, 254);
    assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(cut));
  });
});
