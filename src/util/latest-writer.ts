/**
 * Writes only the latest of many values: while one write is in flight, newer values
 * replace each other, and the newest is written when it is done. So a burst of status
 * changes (a guest that floods health events, say) costs two writes and no memory.
 */
export class LatestWriter<T> {
  private next: { value: T } | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly write: (value: T) => Promise<void>) {}

  /** Queues `value`, replacing any value not yet being written. */
  push(value: T): void {
    this.next = { value };
    this.running ??= this.drain();
  }

  /** Resolves once every pushed value has been written (or its write failed). */
  async flushed(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.next) {
      const { value } = this.next;
      this.next = undefined;
      await this.write(value).catch(() => {});
    }
    this.running = undefined;
  }
}
