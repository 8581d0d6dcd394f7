/**
 * The firewall's input policy, summed up: from `nft -j list ruleset` (JSON) or `iptables-save`
 * (text), whichever the command printed. What the hub needs is whether inbound traffic is
 * filtered: the policy of the chains on the input hook, whether one of them accepts
 * everything unconditionally, and how many rules drop or reject. Reading the ruleset needs
 * CAP_NET_ADMIN (root); without it the source says so.
 */
import type { InventoryRow } from '../../protocol/messages/telemetry.js';
import { lastLine, runCommand } from './run-command.js';
import type { SourceResult } from './source.js';

export interface FirewallSummary {
  backend: 'nftables' | 'iptables' | 'none';
  inputPolicy: 'accept' | 'drop' | 'reject' | 'none';
  acceptAll: boolean;
  dropRules: number;
  inputChains: number;
}

export function firewallRow(summary: FirewallSummary): InventoryRow {
  return { k: 'firewall', ...summary };
}

/** Summarises `nft -j list ruleset` output. */
export function parseNftJson(text: string): FirewallSummary {
  const value = JSON.parse(text) as { nftables?: unknown };
  if (!Array.isArray(value.nftables)) throw new Error('not nft JSON output (no "nftables" array)');
  const inputChains = new Map<string, string>();
  for (const item of value.nftables as Record<string, unknown>[]) {
    const chain = item['chain'] as Record<string, unknown> | undefined;
    if (chain && chain['hook'] === 'input' && chain['type'] === 'filter' && ['ip', 'ip6', 'inet'].includes(String(chain['family']))) {
      inputChains.set(`${String(chain['family'])} ${String(chain['table'])} ${String(chain['name'])}`, String(chain['policy'] ?? 'accept'));
    }
  }
  let acceptAll = false;
  let dropRules = 0;
  for (const item of value.nftables as Record<string, unknown>[]) {
    const rule = item['rule'] as Record<string, unknown> | undefined;
    if (!rule || !inputChains.has(`${String(rule['family'])} ${String(rule['table'])} ${String(rule['chain'])}`)) continue;
    const expr = Array.isArray(rule['expr']) ? (rule['expr'] as Record<string, unknown>[]) : [];
    const verdicts = expr.filter((e) => 'accept' in e || 'drop' in e || 'reject' in e);
    const matches = expr.filter((e) => !('accept' in e || 'drop' in e || 'reject' in e || 'counter' in e || 'log' in e || 'comment' in e));
    const verdict = verdicts[verdicts.length - 1];
    if (!verdict) continue;
    if ('drop' in verdict || 'reject' in verdict) dropRules++;
    else if (matches.length === 0) acceptAll = true;
  }
  const policies = [...inputChains.values()];
  return {
    backend: 'nftables',
    inputPolicy: policies.length === 0 ? 'none' : policies.includes('drop') ? 'drop' : 'accept',
    acceptAll,
    dropRules,
    inputChains: inputChains.size,
  };
}

/** Summarises `iptables-save` output (the filter table's INPUT chain). */
export function parseIptablesSave(text: string): FirewallSummary {
  let inFilter = false;
  let policy: FirewallSummary['inputPolicy'] = 'none';
  let acceptAll = false;
  let dropRules = 0;
  let chains = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) inFilter = line === '*filter';
    if (!inFilter) continue;
    const chain = /^:INPUT (\S+)/.exec(line);
    if (chain) {
      chains = 1;
      policy = (chain[1] as string).toLowerCase() === 'drop' ? 'drop' : 'accept';
      continue;
    }
    if (!line.startsWith('-A INPUT ')) continue;
    const target = /(?:^|\s)-j (\S+)/.exec(line)?.[1];
    if (target === 'DROP' || target === 'REJECT') dropRules++;
    // Unconditional: nothing but the target (and perhaps a comment) after the chain name.
    else if (target === 'ACCEPT' && line.replace(/-m comment --comment ("[^"]*"|\S+)/, '').replace(/\s+/g, ' ').trim() === '-A INPUT -j ACCEPT') acceptAll = true;
  }
  return { backend: chains > 0 ? 'iptables' : 'none', inputPolicy: policy, acceptAll, dropRules, inputChains: chains };
}

/** Either format, recognised by its first character. */
export function parseRuleset(text: string): FirewallSummary {
  return text.trimStart().startsWith('{') ? parseNftJson(text) : parseIptablesSave(text);
}

const NFT = ['nft', '-j', 'list', 'ruleset'];
const IPTABLES = ['iptables-save'];

export class FirewallCollector {
  constructor(private readonly command: readonly string[] | undefined) {}

  async collect(): Promise<SourceResult> {
    if (this.command) {
      const result = await this.run(this.command);
      return 'summary' in result ? { rows: [firewallRow(result.summary)] } : { error: result.error };
    }
    // nft first; when it has no input chain (or cannot run), iptables-save may hold the
    // rules (iptables-legacy); when neither can, say why.
    const nft = await this.run(NFT);
    if ('summary' in nft && nft.summary.inputChains > 0) return { rows: [firewallRow(nft.summary)] };
    const iptables = await this.run(IPTABLES);
    if ('summary' in iptables && iptables.summary.inputChains > 0) return { rows: [firewallRow(iptables.summary)] };
    if ('summary' in nft) return { rows: [firewallRow(nft.summary)] };
    if ('summary' in iptables) return { rows: [firewallRow(iptables.summary)] };
    return { error: `${nft.error}; ${iptables.error}`.slice(0, 300) };
  }

  private async run(argv: readonly string[]): Promise<{ summary: FirewallSummary } | { error: string }> {
    try {
      const out = await runCommand(argv, { timeoutMs: 10_000, maxBytes: 8 * 1024 * 1024 });
      if (out.code !== 0) return { error: `${argv.join(' ')} failed: ${lastLine(out.stderr) || `exit ${out.code}`}${/permission|not permitted/i.test(out.stderr) ? ' (reading the ruleset needs root or CAP_NET_ADMIN)' : ''}` };
      return { summary: parseRuleset(out.stdout) };
    } catch (error) {
      return { error: `${argv.join(' ')} could not run: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
    }
  }
}
