/**
 * `audit verify --checkpoint`: proves, on this machine, that the hub's audit chain still
 * holds every checkpointed record unchanged. The chain is streamed (audit export) and
 * recomputed here, so a hub whose database was rewritten cannot talk its way past it.
 */
import { readFileSync } from 'node:fs';
import type { HubClient } from '../client/hub-client.js';
import { DrawbridgeError } from '../errors.js';
import type { AuditRecord } from '../store/store.js';
import { AuditChainVerifier } from '../store/audit-chain.js';
import { checkpointSignatureValid, parseCheckpoints, type Checkpoint } from './checkpoints.js';

export interface CheckpointReport {
  ok: boolean;
  checked: number;
  checkpoints: { file: string; seq: number; ok: boolean; message: string }[];
  chain: { ok: boolean; message: string };
  lines: string[];
}

interface ExportedRecord {
  seq: number;
  ts: string;
  actor: string;
  action: string;
  device: string | null;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export async function verifyAgainstCheckpoints(client: HubClient, files: string[]): Promise<CheckpointReport> {
  const checkpoints: { file: string; checkpoint: Checkpoint }[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new DrawbridgeError('VALIDATION_FAILED', `cannot read checkpoint file ${file}: ${(cause as Error).message}`, { cause });
    }
    try {
      for (const checkpoint of parseCheckpoints(text)) checkpoints.push({ file, checkpoint });
    } catch (error) {
      throw new DrawbridgeError('VALIDATION_FAILED', `${file}: ${(error as Error).message}`);
    }
  }
  const results = new Map<Checkpoint, { ok: boolean; message: string }>();
  for (const { checkpoint } of checkpoints) {
    if (!checkpointSignatureValid(checkpoint)) results.set(checkpoint, { ok: false, message: 'its signature does not verify: the checkpoint itself was altered' });
  }
  const bySeq = new Map<number, Checkpoint[]>();
  for (const { checkpoint } of checkpoints) if (!results.has(checkpoint)) bySeq.set(checkpoint.seq, [...(bySeq.get(checkpoint.seq) ?? []), checkpoint]);

  const verifier = new AuditChainVerifier();
  let chain = { ok: true, message: '' };
  let pending = '';
  const consume = (line: string): void => {
    if (!line.trim() || !chain.ok) return;
    const r = JSON.parse(line) as ExportedRecord;
    const record: AuditRecord = { ...r, ts: Date.parse(r.ts) };
    const problem = verifier.feed(record);
    if (problem) {
      chain = { ok: false, message: problem.message };
      return;
    }
    for (const checkpoint of bySeq.get(record.seq) ?? []) {
      results.set(
        checkpoint,
        record.hash === checkpoint.hash
          ? { ok: true, message: `record ${record.seq} is unchanged and the chain leads to it` }
          : { ok: false, message: `record ${record.seq} is not the one checkpointed (its hash differs): the chain was rewritten` },
      );
    }
  };
  const result = await client.raw('GET', '/v1/audit/export', undefined, (chunk) => {
    pending += chunk.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) consume(line);
  });
  if (result.status >= 400) throw new DrawbridgeError('INTERNAL', `export failed: ${result.text}`);
  consume(pending);
  const lastSeq = verifier.count;
  for (const { checkpoint } of checkpoints) {
    if (results.has(checkpoint)) continue;
    results.set(
      checkpoint,
      chain.ok
        ? { ok: false, message: `record ${checkpoint.seq} is gone: the log now ends at record ${lastSeq} (records were removed)` }
        : { ok: false, message: `not reached: the chain breaks before record ${checkpoint.seq}` },
    );
  }
  const rows = checkpoints.map(({ file, checkpoint }) => ({ file, seq: checkpoint.seq, ...(results.get(checkpoint) as { ok: boolean; message: string }) }));
  const ok = chain.ok && rows.every((r) => r.ok);
  const lines = [
    chain.ok ? `audit chain intact: ${verifier.count} records` : `audit chain BROKEN: ${chain.message}`,
    ...rows.map((r) => `checkpoint ${r.seq} (${r.file}): ${r.ok ? 'ok' : 'FAILED'}: ${r.message}`),
    ok ? `every checkpointed record is held unchanged (${rows.length} checkpoint${rows.length === 1 ? '' : 's'})` : 'VERIFICATION FAILED',
  ];
  return { ok, checked: verifier.count, checkpoints: rows, chain: { ok: chain.ok, message: chain.message || 'intact' }, lines };
}
