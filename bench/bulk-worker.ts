/**
 * Background bulk load for the isolation measurement, on its own thread so that its data
 * events never delay the ping-pong being timed on the main thread. Downloads from the
 * target's source mode as fast as the path allows until told to stop, then reports the
 * bytes and seconds of the steady part (after the first FLOWING_BYTES).
 *
 * Messages to the parent: {type:'flowing'} once data flows, {type:'done', bytes, seconds},
 * {type:'error', message}. From the parent: 'stop'.
 */
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';

const FLOWING_BYTES = 4 * 1024 * 1024;
const { port } = workerData as { port: number };
const parent = parentPort;
if (!parent) throw new Error('bulk-worker runs as a worker thread');

let received = 0;
let flowingAt: { time: number; bytes: number } | undefined;
const socket = connect({ host: '127.0.0.1', port, noDelay: true });
socket.once('connect', () => {
  const request = Buffer.alloc(9);
  request[0] = 0x47; // "G": the target sends this many bytes
  request.writeBigUInt64BE(2n ** 50n, 1);
  socket.write(request);
});
socket.on('data', (chunk: Buffer) => {
  received += chunk.length;
  if (!flowingAt && received >= FLOWING_BYTES) {
    flowingAt = { time: performance.now(), bytes: received };
    parent.postMessage({ type: 'flowing' });
  }
});
socket.on('error', (error) => parent.postMessage({ type: 'error', message: error.message }));
socket.on('close', () => {
  if (!stopping) parent.postMessage({ type: 'error', message: 'the bulk stream closed before it was stopped' });
});
let stopping = false;
parent.on('message', (message) => {
  if (message !== 'stop') return;
  stopping = true;
  const bytes = flowingAt ? received - flowingAt.bytes : 0;
  const seconds = flowingAt ? (performance.now() - flowingAt.time) / 1000 : 0;
  socket.destroy();
  parent.postMessage({ type: 'done', bytes, seconds });
  parent.close();
});
