/** A secret value in JSON: as text when it is UTF-8, else base64 with "encoding": "base64". */
export function valueJson(name: string, version: number, value: Buffer): { name: string; version: number; value: string; encoding?: 'base64' } {
  const text = value.toString('utf8');
  return Buffer.from(text, 'utf8').equals(value) ? { name, version, value: text } : { name, version, value: value.toString('base64'), encoding: 'base64' };
}
