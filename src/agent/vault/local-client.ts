/** A client of the agent's local API (the agent's own CLI uses the same API as apps). */
import { request } from 'node:http';
import { DrawbridgeError } from '../../errors.js';
import { errorFromBody } from '../../client/hub-client.js';

export function localApiRequest<T>(socketPath: string, token: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', headers: { authorization: `Bearer ${token}` }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          reject(new DrawbridgeError('INTERNAL', `the agent answered ${res.statusCode} with a body that is not JSON`));
          return;
        }
        if ((res.statusCode ?? 500) >= 400) reject(errorFromBody(res.statusCode ?? 500, body));
        else resolve(body as T);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'ENOENT' || error.code === 'ECONNREFUSED'
          ? new DrawbridgeError('UNSUPPORTED', `no agent is listening on ${socketPath}: start it with drawbridge agent run`)
          : error.code === 'EACCES'
            ? new DrawbridgeError('FORBIDDEN', `no permission to use ${socketPath} (localApi.mode)`)
            : new DrawbridgeError('INTERNAL', `the local API at ${socketPath} failed: ${error.message}`),
      ),
    );
    req.end();
  });
}
