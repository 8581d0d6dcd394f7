/**
 * The vault: versioned secrets sealed at rest (envelope.ts), check-and-set writes, soft
 * delete, undelete and destroy, the rules that say which edges receive a secret, and key
 * rotation. Every change is audited in the same transaction as the change itself, and no
 * audit record or log line ever holds a value. Changes that concern edges are announced to
 * the listeners (delivery pushes them at once).
 */
import { DrawbridgeError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { AccessKind, DeliveryRecord, SecretAccessRule, SecretRecord, SecretVersionRecord, VaultStore } from '../store/vault-store.js';
import type { Logger } from '../util/logger.js';
import { assertValidName } from '../util/names.js';
import { entitlementOf, groupDevicesByEdge } from './access.js';
import { openVersion, rewrapVersion, sealVersion } from './envelope.js';
import type { KeyEncryptionKey } from './key-encryption-key.js';
import { assertSecretName, parseTagRule } from './names.js';

export interface VaultSettings {
  maxVersions: number;
  maxValueBytes: number;
}

export type AccessTarget = { edge: string } | { device: string } | { tag: string };

export interface SecretStatusEntry {
  edge: string;
  edgeId: string;
  /** The virtual devices the edge hosts */
  devices: string[];
  /** The version the edge acknowledged, or null */
  version: number | null;
  deliveredAt: number | null;
  lastReadAt: number | null;
  reads: number;
  /** Allowed now, and receives every new version */
  allowed: boolean;
  /** Allowed only through a disabled edge or disabled devices: keeps what it holds, receives nothing new */
  paused: boolean;
  /** The version it should hold (null: none; a copy it still holds is being removed) */
  wantedVersion: number | null;
}

/** Writes that lost a race with another writer are retried this often before giving up. */
const PUT_ATTEMPTS = 5;
/** Versions re-wrapped per transaction during a rekey. */
const REKEY_BATCH = 200;

export class VaultService {
  private readonly listeners: ((names: readonly string[]) => void)[] = [];

  constructor(
    readonly repo: VaultStore,
    private readonly kek: KeyEncryptionKey,
    private readonly store: Store,
    readonly settings: VaultSettings,
    private readonly now: () => number,
    private readonly logger: Logger,
  ) {}

  /** Called after every change that may change what some edge should hold. */
  onChange(listener: (names: readonly string[]) => void): void {
    this.listeners.push(listener);
  }

  private changed(name: string): void {
    for (const listener of this.listeners) {
      try {
        listener([name]);
      } catch (error) {
        this.logger.error({ err: error, secret: name }, 'a vault change listener failed');
      }
    }
  }

  async requireSecret(name: string): Promise<SecretRecord> {
    assertSecretName(name);
    const secret = await this.repo.getSecret(name);
    if (!secret) throw new DrawbridgeError('UNKNOWN_SECRET', `unknown secret "${name}"`);
    return secret;
  }

  /** Writes a new version. `cas`: refuse unless it is the current version (0: the secret must not exist yet). */
  async put(actor: string, name: string, value: Buffer, cas?: number): Promise<{ name: string; version: number }> {
    assertSecretName(name);
    if (value.length > this.settings.maxValueBytes) {
      throw new DrawbridgeError('PAYLOAD_TOO_LARGE', `the value is ${value.length} bytes; the limit is ${this.settings.maxValueBytes} (vault.maxValueBytes)`);
    }
    for (let attempt = 0; attempt < PUT_ATTEMPTS; attempt++) {
      const current = (await this.repo.getSecret(name))?.currentVersion ?? 0;
      if (cas !== undefined && cas !== current) {
        throw new DrawbridgeError('CAS_MISMATCH', `check-and-set failed: "${name}" is at version ${current}, not ${cas}`, { details: { currentVersion: current } });
      }
      const version = current + 1;
      const sealed = await sealVersion(this.kek, name, version, value);
      const { written } = await this.repo.putVersion(
        { name, version, createdAt: this.now(), createdBy: actor, size: value.length },
        sealed,
        current,
        this.settings.maxVersions,
        {
          actor,
          action: 'secret.put',
          details: {
            secret: name,
            version,
            size: value.length,
            ...(cas !== undefined ? { cas } : {}),
            ...(version > this.settings.maxVersions ? { destroyedUpTo: version - this.settings.maxVersions } : {}),
          },
        },
      );
      if (written) {
        this.changed(name);
        return { name, version };
      }
      // Another write landed between the read and ours: a caller that named a version loses.
      if (cas !== undefined) {
        const now = (await this.repo.getSecret(name))?.currentVersion ?? 0;
        throw new DrawbridgeError('CAS_MISMATCH', `check-and-set failed: "${name}" is at version ${now}, not ${cas}`, { details: { currentVersion: now } });
      }
    }
    throw new DrawbridgeError('CONFLICT', `"${name}" is being written by others too often; try again`);
  }

  /** The value of a version (default: the current one). Audited with the version before the value is returned. */
  async read(actor: string, name: string, version?: number): Promise<{ name: string; version: number; value: Buffer }> {
    const secret = await this.requireSecret(name);
    const wanted = version ?? secret.currentVersion;
    const record = await this.repo.getVersion(name, wanted);
    if (!record) throw new DrawbridgeError('UNKNOWN_SECRET', `secret "${name}" has no version ${wanted}`);
    if (record.destroyedAt !== null || !record.sealed) throw new DrawbridgeError('SECRET_DESTROYED', `version ${wanted} of "${name}" was destroyed`);
    if (record.deletedAt !== null) throw new DrawbridgeError('SECRET_DELETED', `version ${wanted} of "${name}" is deleted (drawbridge secrets undelete ${name} --version ${wanted})`);
    const value = await openVersion(this.kek, name, wanted, record.sealed);
    // No record, no value.
    await this.store.appendAudit({ actor, action: 'secret.read', details: { secret: name, version: wanted } });
    return { name, version: wanted, value };
  }

  /** The current live value for delivery (no audit here: delivery writes its own records). */
  async valueForDelivery(name: string, version: number): Promise<Buffer | undefined> {
    const record = await this.repo.getVersion(name, version);
    if (!record?.sealed || record.deletedAt !== null) return undefined;
    return openVersion(this.kek, name, version, record.sealed);
  }

  async versions(name: string): Promise<{ secret: SecretRecord; versions: SecretVersionRecord[] }> {
    const secret = await this.requireSecret(name);
    return { secret, versions: await this.repo.listVersions(name) };
  }

  /** Soft delete; without a version, the current one (edges then drop the secret). */
  async remove(actor: string, name: string, version?: number): Promise<{ name: string; version: number }> {
    return this.setDeleted(actor, name, version, true);
  }

  async undelete(actor: string, name: string, version?: number): Promise<{ name: string; version: number }> {
    return this.setDeleted(actor, name, version, false);
  }

  private async setDeleted(actor: string, name: string, version: number | undefined, deleted: boolean): Promise<{ name: string; version: number }> {
    const secret = await this.requireSecret(name);
    const wanted = version ?? secret.currentVersion;
    const ok = await this.repo.setDeleted(name, wanted, deleted ? this.now() : null, {
      actor,
      action: deleted ? 'secret.delete' : 'secret.undelete',
      details: { secret: name, version: wanted },
    });
    if (!ok) {
      const record = await this.repo.getVersion(name, wanted);
      if (!record) throw new DrawbridgeError('UNKNOWN_SECRET', `secret "${name}" has no version ${wanted}`);
      if (record.destroyedAt !== null) throw new DrawbridgeError('SECRET_DESTROYED', `version ${wanted} of "${name}" was destroyed`);
      throw new DrawbridgeError('INVALID_STATE', `version ${wanted} of "${name}" is ${deleted ? 'already deleted' : 'not deleted'}`);
    }
    this.changed(name);
    return { name, version: wanted };
  }

  async destroy(actor: string, name: string, version: number): Promise<{ name: string; version: number }> {
    await this.requireSecret(name);
    const ok = await this.repo.destroyVersion(name, version, this.now(), { actor, action: 'secret.destroy', details: { secret: name, version } });
    if (!ok) {
      const record = await this.repo.getVersion(name, version);
      if (!record) throw new DrawbridgeError('UNKNOWN_SECRET', `secret "${name}" has no version ${version}`);
      throw new DrawbridgeError('SECRET_DESTROYED', `version ${version} of "${name}" was already destroyed`);
    }
    this.changed(name);
    return { name, version };
  }

  /**
   * Resolves an allow/deny target to a stored rule subject, checking that the edge or device
   * exists. A deny may also name what no longer exists (a removed device by its name, a
   * removed edge by the id its rules show), so stale rules can be cleared.
   */
  private async ruleFor(target: AccessTarget, forDeny = false): Promise<{ kind: AccessKind; subject: string; shown: string }> {
    if ('edge' in target) {
      const edge = await this.store.getEdgeByName(assertValidName(target.edge, 'edge name'));
      if (edge) return { kind: 'edge', subject: edge.id, shown: edge.name };
      if (forDeny) return { kind: 'edge', subject: target.edge, shown: target.edge };
      throw new DrawbridgeError('UNKNOWN_EDGE', `unknown edge "${target.edge}"`);
    }
    if ('device' in target) {
      const device = await this.store.getDevice(assertValidName(target.device, 'device name'));
      if (device || forDeny) return { kind: 'device', subject: target.device, shown: target.device };
      throw new DrawbridgeError('UNKNOWN_DEVICE', `unknown device "${target.device}"`);
    }
    const tag = parseTagRule(target.tag);
    return { kind: 'tag', subject: `${tag.key}=${tag.value}`, shown: `${tag.key}=${tag.value}` };
  }

  async allow(actor: string, name: string, target: AccessTarget): Promise<{ name: string; kind: AccessKind; subject: string; changed: boolean }> {
    await this.requireSecret(name);
    const rule = await this.ruleFor(target);
    const changed = await this.repo.addRule(
      { name, kind: rule.kind, subject: rule.subject, createdAt: this.now(), createdBy: actor },
      { actor, action: 'secret.allow', details: { secret: name, [rule.kind]: rule.shown } },
    );
    if (changed) this.changed(name);
    return { name, kind: rule.kind, subject: rule.shown, changed };
  }

  async deny(actor: string, name: string, target: AccessTarget): Promise<{ name: string; kind: AccessKind; subject: string; changed: boolean }> {
    await this.requireSecret(name);
    const rule = await this.ruleFor(target, true);
    const changed = await this.repo.removeRule(name, rule.kind, rule.subject, { actor, action: 'secret.deny', details: { secret: name, [rule.kind]: rule.shown } });
    if (!changed) throw new DrawbridgeError('NOT_FOUND', `"${name}" has no rule allowing ${rule.kind} ${rule.shown}`);
    this.changed(name);
    return { name, kind: rule.kind, subject: rule.shown, changed };
  }

  /** Rules with edge ids shown as edge names. */
  async rules(name: string): Promise<(SecretAccessRule & { shown: string })[]> {
    const names = new Map((await this.store.listEdges()).map((e) => [e.id, e.name]));
    return (await this.repo.listRules(name)).map((r) => ({ ...r, shown: r.kind === 'edge' ? (names.get(r.subject) ?? r.subject) : r.subject }));
  }

  /** Every edge allowed the secret, and every edge still holding it: what each holds and when it was read. */
  async status(name: string): Promise<{ secret: SecretRecord; wantedVersion: number | null; edges: SecretStatusEntry[] }> {
    const secret = await this.requireSecret(name);
    const [rules, devices, edges, deliveries, deliverable] = await Promise.all([
      this.repo.listRules(name),
      this.store.listDevices(),
      this.store.listEdges(),
      this.repo.deliveriesOfSecret(name),
      this.repo.deliverableVersions([name]),
    ]);
    const held = new Map(deliveries.map((d) => [d.edgeId, d]));
    const live = deliverable.get(name);
    const devicesOf = groupDevicesByEdge(devices);
    const entries: SecretStatusEntry[] = [];
    for (const edge of edges) {
      const delivery = held.get(edge.id);
      const entitlement = entitlementOf(edge, rules, devicesOf.get(edge.id) ?? []);
      const allowed = entitlement.active.has(name);
      const paused = entitlement.paused.has(name);
      if (!allowed && !paused && !delivery) continue;
      const wanted = await this.wantedVersion(name, live, allowed, paused, delivery?.version);
      entries.push({
        edge: edge.name,
        edgeId: edge.id,
        devices: (devicesOf.get(edge.id) ?? []).map((d) => d.name),
        version: delivery?.version ?? null,
        deliveredAt: delivery?.deliveredAt ?? null,
        lastReadAt: delivery?.lastReadAt ?? null,
        reads: delivery?.reads ?? 0,
        allowed,
        paused,
        wantedVersion: wanted ?? null,
      });
    }
    return { secret, wantedVersion: live ?? null, edges: entries };
  }

  /**
   * The version an edge should hold, given the secret's deliverable version (`live`), the
   * edge's entitlement and what it holds: the live version when allowed; when paused, what it
   * holds as long as that version is neither deleted nor destroyed (nothing newer); else none.
   */
  async wantedVersion(name: string, live: number | undefined, allowed: boolean, paused: boolean, held: number | undefined): Promise<number | undefined> {
    if (live === undefined) return undefined;
    if (allowed) return live;
    if (!paused || held === undefined) return undefined;
    if (held === live) return held;
    const record = await this.repo.getVersion(name, held);
    return record?.sealed && record.deletedAt === null ? held : undefined;
  }

  async heldBy(edgeId: string): Promise<DeliveryRecord[]> {
    return this.repo.deliveriesOfEdge(edgeId);
  }

  /**
   * Rotates the key-encryption key: a new key becomes current, every data key is re-wrapped
   * with it in batches (values are never decrypted), then the old keys are forgotten.
   */
  async rekey(actor: string): Promise<{ kekId: string; rewrapped: number; retired: string[] }> {
    const previous = this.kek.currentId;
    const kekId = await this.kek.rotate();
    let rewrapped = 0;
    for (;;) {
      const batch = await this.repo.sealedNotWrappedBy(kekId, REKEY_BATCH);
      if (batch.length === 0) break;
      const updates = [];
      for (const entry of batch) updates.push({ name: entry.name, version: entry.version, sealed: await rewrapVersion(this.kek, entry.name, entry.version, entry.sealed) });
      const changed = await this.repo.rewrap(updates);
      rewrapped += changed;
      // A version destroyed or pruned meanwhile is simply gone; anything else would loop forever.
      if (changed === 0 && batch.length > 0) {
        const still = await this.repo.sealedNotWrappedBy(kekId, REKEY_BATCH);
        if (still.length >= batch.length && still.every((s, i) => s.name === batch[i]?.name && s.version === batch[i]?.version)) {
          throw new DrawbridgeError('INTERNAL', 'rekey made no progress');
        }
      }
    }
    const retired = await this.kek.retire(new Set(await this.repo.kekIdsInUse()));
    await this.store.appendAudit({ actor, action: 'vault.rekey', details: { previousKey: previous, key: kekId, rewrapped, retired } });
    this.logger.info({ key: kekId, rewrapped, retired }, 'vault key-encryption key rotated');
    return { kekId, rewrapped, retired };
  }
}
