/**
 * Server-sent events over `fetch`: the kernel start-up progress stream (GET kernels/{id}/events).
 *
 * `fetch` rather than `EventSource`, so the request carries the same token header and XSRF-free
 * authentication as every other call of the panel.
 */

export interface IEventFrame {
  event: string;
  data: string;
}

/** Splits a text stream into SSE frames as chunks arrive; comment lines (`: ...`) are skipped. */
export class EventStreamParser {
  private _pending = '';

  /** Frames completed by this chunk, in order. */
  push(chunk: string): IEventFrame[] {
    this._pending += chunk.replace(/\r\n?/g, '\n');
    const frames: IEventFrame[] = [];
    let end = this._pending.indexOf('\n\n');
    while (end >= 0) {
      const block = this._pending.slice(0, end);
      this._pending = this._pending.slice(end + 2);
      const frame = parseBlock(block);
      if (frame) {
        frames.push(frame);
      }
      end = this._pending.indexOf('\n\n');
    }
    return frames;
  }
}

function parseBlock(block: string): IEventFrame | null {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) {
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') {
      event = value;
    } else if (field === 'data') {
      data.push(value);
    }
  }
  return data.length ? { event, data: data.join('\n') } : null;
}
