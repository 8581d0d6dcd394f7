/**
 * Per-app tokens for the agent's local API. Each names the secrets its app may read; only
 * the SHA-256 of its secret part is stored (in a file at mode 0600 beside the agent config),
 * looked up by its public id and compared in constant time. The running agent sees a change
 * to the file (a token added or removed with `drawbridge agent app-token`) at the next
 * request: a removed token is refused at once.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { DrawbridgeError } from '../../errors.js';
import { hashSecret, randomId, randomSecret, secretMatches } from '../../protocol/tokens.js';
import { writeFileAtomic } from '../../util/files.js';
import { nameSchema } from '../../util/schemas.js';
import { secretNameSchema } from '../../vault/name-schema.js';

const APP_TOKEN = /^dba_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** The app name the agent's own CLI reads as (its token names every secret). */
export const LOCAL_ADMIN_APP = 'agent-cli';
/** Secrets one token may name. */
export const MAX_SECRETS_PER_TOKEN = 256;

const AppEntrySchema = z.strictObject({
  app: nameSchema,
  tokenId: z.string().regex(/^[0-9a-f]{16}$/),
  tokenHash: z.string().regex(/^[0-9a-f]{64}$/),
  /** Secret names; "*" (the agent's own CLI only) means every secret on the edge. */
  secrets: z.array(z.union([secretNameSchema, z.literal('*')])).max(MAX_SECRETS_PER_TOKEN),
  createdAt: z.number().int(),
});
export type AppEntry = z.infer<typeof AppEntrySchema>;
const FileSchema = z.strictObject({ v: z.literal(1), apps: z.array(AppEntrySchema) });

export class AppTokenStore {
  private entries: AppEntry[] = [];
  private stamp = '';

  constructor(private readonly path: string) {}

  /** Re-reads the file when it changed (cheap: one stat per call). */
  private refresh(): void {
    let stamp = 'missing';
    try {
      const s = statSync(this.path);
      stamp = `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      // no file: no apps
    }
    if (stamp === this.stamp) return;
    this.entries = stamp === 'missing' ? [] : this.read();
    this.stamp = stamp;
  }

  private read(): AppEntry[] {
    try {
      return FileSchema.parse(JSON.parse(readFileSync(this.path, 'utf8'))).apps;
    } catch (cause) {
      throw new DrawbridgeError('CONFIG_INVALID', `${this.path} is not a valid app token file`, { cause });
    }
  }

  list(): AppEntry[] {
    this.refresh();
    return [...this.entries];
  }

  /** The app a token belongs to, or undefined (unknown, removed or wrong). */
  authenticate(token: string): AppEntry | undefined {
    const match = APP_TOKEN.exec(token);
    this.refresh();
    const entry = match ? this.entries.find((e) => e.tokenId === match[1]) : undefined;
    // Compared even when there is no entry, so a miss takes as long as a wrong secret.
    const ok = secretMatches(match?.[2] ?? '', entry?.tokenHash ?? '0'.repeat(64));
    return ok && entry ? entry : undefined;
  }

  /** Adds an app; returns its token, which is stored only hashed. */
  add(app: string, secrets: readonly string[], now: number): string {
    const parsedApp = nameSchema.safeParse(app);
    if (!parsedApp.success) throw new DrawbridgeError('INVALID_NAME', `invalid app name "${app.slice(0, 80)}": use 1-63 lower-case letters, digits and "-"`);
    // "*" (every secret) is the agent CLI's alone: an app names what it reads.
    if ((app === LOCAL_ADMIN_APP) !== secrets.includes('*')) {
      throw new DrawbridgeError('VALIDATION_FAILED', app === LOCAL_ADMIN_APP ? `"${LOCAL_ADMIN_APP}" is reserved for the agent's own CLI` : 'name each secret the app may read; "*" is not allowed');
    }
    if (secrets.length === 0) throw new DrawbridgeError('VALIDATION_FAILED', 'name at least one secret the app may read (--secret NAME)');
    for (const name of secrets) {
      if (name !== '*' && !secretNameSchema.safeParse(name).success) throw new DrawbridgeError('INVALID_NAME', `invalid secret name "${name.slice(0, 80)}"`);
    }
    this.stamp = '';
    const entries = this.list();
    if (entries.some((e) => e.app === app)) throw new DrawbridgeError('CONFLICT', `app "${app}" already has a token; remove it first (drawbridge agent app-token remove ${app})`);
    const id = randomId(8);
    const secret = randomSecret(32);
    this.write([...entries, { app, tokenId: id, tokenHash: hashSecret(secret), secrets: [...new Set(secrets)], createdAt: now }]);
    return `dba_${id}_${secret}`;
  }

  remove(app: string): boolean {
    this.stamp = '';
    const entries = this.list();
    const rest = entries.filter((e) => e.app !== app);
    if (rest.length === entries.length) return false;
    this.write(rest);
    return true;
  }

  exists(): boolean {
    return existsSync(this.path);
  }

  private write(apps: AppEntry[]): void {
    writeFileAtomic(this.path, JSON.stringify({ v: 1, apps }, null, 2) + '\n', 0o600);
    this.stamp = '';
  }
}
