/** A zod schema's safeParse, as request handlers use it. */
export type SafeParser<T> = { safeParse: (v: unknown) => { success: true; data: T } | { success: false; error: { issues: { message: string; path: PropertyKey[] }[] } } };

/** A request's params, checked against `schema`; else a BAD_REQUEST error naming the first bad field. */
export function parseParams<T>(schema: SafeParser<T>, v: unknown): T {
  const r = schema.safeParse(v);
  if (!r.success) {
    const i = r.error.issues[0];
    throw Object.assign(new Error(`invalid params${i ? ` at ${i.path.join('.') || '(root)'}: ${i.message}` : ''}`), { code: 'BAD_REQUEST' });
  }
  return r.data;
}
