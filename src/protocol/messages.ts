import * as z from 'zod/mini';
import { FEATURE_WINDOW } from './channel.js';

/** Control messages carried in Message frames on channel 0. */
export const HelloSchema = z.object({
  t: z.literal('hello'),
  version: z.int(),
  role: z.enum(['host', 'agent']),
  features: z.array(z.string()),
  /** Agent only: its boot id, so the host can tell a restored or rebooted guest. */
  bootId: z.optional(z.string()),
});

export const RequestSchema = z.object({
  t: z.literal('req'),
  id: z.int().check(z.nonnegative()),
  method: z.string().check(z.minLength(1)),
  params: z.unknown(),
});

export const WireErrorSchema = z.object({ code: z.string(), message: z.string() });

export const ResponseSchema = z.discriminatedUnion('ok', [
  z.object({ t: z.literal('res'), id: z.int(), ok: z.literal(true), result: z.unknown() }),
  z.object({ t: z.literal('res'), id: z.int(), ok: z.literal(false), error: WireErrorSchema }),
]);

export const EventSchema = z.object({ t: z.literal('ev'), name: z.string().check(z.minLength(1)), data: z.unknown() });

export const MessageSchema = z.union([HelloSchema, RequestSchema, ResponseSchema, EventSchema]);

export type Hello = z.infer<typeof HelloSchema>;
export type Request = z.infer<typeof RequestSchema>;
export type Response = z.infer<typeof ResponseSchema>;
export type Event = z.infer<typeof EventSchema>;
export type Message = z.infer<typeof MessageSchema>;
export type WireError = z.infer<typeof WireErrorSchema>;

/** An agent that trims the guest's memory before a snapshot (src/agent/memory-trim.ts). */
export const FEATURE_MEMORY_TRIM = 'vm.memory-trim';

/** A host that tells the agent its clock (METHODS.hostClock), for the agent to set the guest's precisely. */
export const FEATURE_HOST_CLOCK = 'host.clock';

/** Feature names negotiated at the handshake; both sides use the intersection. */
export const FEATURES = ['container.run', 'image.load', 'image.pull', 'container.stop', 'session', 'exec', 'exec.tty', 'container.tty', 'image.pull-auth', FEATURE_MEMORY_TRIM, FEATURE_HOST_CLOCK, FEATURE_WINDOW] as const;
