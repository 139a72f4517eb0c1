/** Anything text can be written to: a stream, or a VM's log. */
export interface TextSink {
  write(chunk: string): unknown;
}

/**
 * Writes a stream's bytes as prefixed lines ("[ctr:out] ..."), holding a partial last
 * line until its newline (or `flush`) arrives, so order within a stream is kept.
 */
export class LinePrefixer {
  /** A line longer than this is written in pieces: a stream without newlines must not grow memory. */
  static readonly MAX_LINE = 64 * 1024;
  private partial = '';
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly prefix: string,
    private readonly out: TextSink,
    private readonly maxLine = LinePrefixer.MAX_LINE,
  ) {}

  push(chunk: Uint8Array): void {
    const text = this.partial + this.decoder.decode(chunk, { stream: true });
    const lines = text.split('\n');
    this.partial = lines.pop()!;
    while (this.partial.length > this.maxLine) {
      lines.push(this.partial.slice(0, this.maxLine));
      this.partial = this.partial.slice(this.maxLine);
    }
    if (lines.length > 0) this.out.write(lines.map((l) => `${this.prefix} ${l}\n`).join(''));
  }

  flush(): void {
    const rest = this.partial + this.decoder.decode();
    this.partial = '';
    if (rest) this.out.write(`${this.prefix} ${rest}\n`);
  }
}
