/**
 * Renews the hub's own server certificate (never an operator's --tls-cert one) well before
 * it expires: checked at start and daily, issued again from the same CA (so every CA pin
 * holds), and swapped into the running server without a restart.
 */
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { SERVER_CERTIFICATE_LIFETIME_MS, serverCertificateDue, writeServerCertificate } from './certificates.js';

const DAY_MS = 86_400_000;

export interface CertificateRenewalOptions {
  dataDir: string;
  /** Host names and addresses the hub is reached by; each must be in the certificate. */
  hosts: readonly string[];
  clock: Clock;
  logger: Logger;
}

type Tls = { cert: string; key: string };

export class CertificateRenewal {
  private timer: TimerHandle | undefined;
  private checking: Promise<boolean> | undefined;
  private apply: ((tls: Tls) => void) | undefined;

  constructor(
    private readonly options: CertificateRenewalOptions,
    private current: Tls,
  ) {}

  /** The certificate and key in service. */
  get tls(): Tls {
    return this.current;
  }

  /** Renews the certificate if it is due; resolves true when it did. */
  check(): Promise<boolean> {
    this.checking ??= this.renewIfDue().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  /** Checks once a day from now on; `apply` puts a renewed certificate into service (server.setSecureContext). */
  start(apply: (tls: Tls) => void): void {
    this.apply = apply;
    this.timer = this.options.clock.setInterval(() => {
      this.check().catch((error: unknown) => this.options.logger.error({ err: error }, 'could not renew the hub certificate; will retry tomorrow'));
    }, DAY_MS);
    this.timer.unref();
  }

  stop(): void {
    this.options.clock.clearInterval(this.timer);
  }

  private async renewIfDue(): Promise<boolean> {
    const now = this.options.clock.now();
    const why = serverCertificateDue(this.current.cert, this.current.key, this.options.hosts, now);
    if (!why) return false;
    // Peers check the dates on their own clocks: never date a certificate after the wall clock.
    const from = Math.min(now, Date.now()) - 60_000;
    const renewed = await writeServerCertificate(this.options.dataDir, this.options.hosts, { notBefore: from, notAfter: from + SERVER_CERTIFICATE_LIFETIME_MS });
    this.current = renewed;
    this.apply?.(renewed);
    this.options.logger.info({ reason: why }, 'renewed the hub server certificate (same CA: pins hold)');
    return true;
  }
}
