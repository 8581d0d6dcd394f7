/**
 * Recommendations (findings) from an edge's current state. Each inventory decides its own
 * finding rules: every time it changes, the findings that hold are computed afresh, so a
 * finding resolves by itself as soon as the state is fixed.
 */
import type { InventoryName, InventoryRow } from '../../protocol/messages/telemetry.js';
import type { FindingFire, InventoryOutcome } from '../../store/monitor-store.js';
import type { FindingRule, MonitoringConfig } from '../config.js';

/** Which finding rules each inventory decides. */
export const FINDINGS_BY_INVENTORY: Partial<Record<InventoryName, readonly FindingRule[]>> = {
  ports: ['open-port-all-interfaces'],
  firewall: ['permissive-firewall'],
  sshd: ['ssh-root-login-allowed', 'ssh-password-auth-allowed', 'ssh-empty-passwords-allowed'],
};

const ALL_INTERFACES = new Set(['0.0.0.0', '::']);

export function listensOnAllInterfaces(row: InventoryRow): boolean {
  return ALL_INTERFACES.has(String(row['addr']));
}

export function portKey(row: InventoryRow): string {
  return `${String(row['proto'])}/${String(row['port'])}`;
}

/**
 * Permissive: no input filtering at all (no ruleset, or no chain on the input hook), an
 * input policy of accept with nothing that drops or rejects, or an unconditional accept rule
 * in an input chain (everything it reaches gets in).
 */
export function isPermissiveFirewall(row: InventoryRow | undefined): boolean {
  if (!row) return false;
  if (row['backend'] === 'none' || row['inputChains'] === 0) return true;
  if (row['acceptAll'] === true) return true;
  return row['inputPolicy'] === 'accept' && row['dropRules'] === 0;
}

function yes(value: unknown): boolean {
  return String(value).toLowerCase() === 'yes';
}

export function findingsFor(
  inventory: InventoryName,
  rows: ReadonlyMap<string, InventoryRow>,
  config: MonitoringConfig['findings'],
  allowed: ReadonlySet<string> | undefined,
): InventoryOutcome['findings'] {
  const rules = FINDINGS_BY_INVENTORY[inventory] ?? [];
  const holding: FindingFire[] = [];
  const add = (rule: FindingRule, key: string, facts: Record<string, unknown>, severity = config[rule].severity): void => {
    if (config[rule].enabled) holding.push({ rule, key, severity, facts });
  };
  if (inventory === 'ports') {
    const open = new Map<string, { protocol: string; port: number; addresses: string[]; process: string | null }>();
    for (const row of rows.values()) {
      if (!listensOnAllInterfaces(row) || allowed?.has(portKey(row))) continue;
      const key = portKey(row);
      const entry = open.get(key) ?? { protocol: String(row['proto']), port: Number(row['port']), addresses: [], process: (row['proc'] as string | null) ?? null };
      entry.addresses.push(String(row['addr']));
      entry.process ??= (row['proc'] as string | null) ?? null;
      open.set(key, entry);
    }
    for (const [key, facts] of open) add('open-port-all-interfaces', key, facts);
  } else if (inventory === 'firewall') {
    const row = rows.get('firewall');
    if (row && isPermissiveFirewall(row)) {
      add('permissive-firewall', 'firewall', { backend: row['backend'], inputPolicy: row['inputPolicy'], acceptAll: row['acceptAll'], dropRules: row['dropRules'] });
    }
  } else if (inventory === 'sshd') {
    const row = rows.get('sshd');
    if (row) {
      const rootLogin = String(row['permitRootLogin']).toLowerCase();
      if (rootLogin !== 'no') {
        // Root with a password is the real hazard; key-only root login is still worth a note.
        add('ssh-root-login-allowed', 'sshd', { permitRootLogin: rootLogin, from: row['from'] }, rootLogin === 'yes' ? undefined : 'low');
      }
      if (yes(row['passwordAuthentication'])) add('ssh-password-auth-allowed', 'sshd', { passwordAuthentication: 'yes', from: row['from'] });
      if (yes(row['permitEmptyPasswords'])) add('ssh-empty-passwords-allowed', 'sshd', { permitEmptyPasswords: 'yes', from: row['from'] });
    }
  }
  return { rules, holding };
}
