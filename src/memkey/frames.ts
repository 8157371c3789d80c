/**
 * Framing on the consumer Unix socket: 1 byte type, 2 bytes big-endian payload length, payload.
 * The server sends a STATUS frame (JSON) on connect and whenever its state changes, and a KEY frame
 * (16-byte key id, then the 32-byte master key) whenever it holds a key. Binary, so that the key
 * never becomes an (unwipeable) JavaScript string. Unknown frame types are ignored.
 */
export const FRAME_STATUS = 1;
export const FRAME_KEY = 2;
const HEADER = 3;
const MAX_PAYLOAD = 0xffff;

export interface Frame {
  type: number;
  payload: Buffer;
}

/** Consumer-facing status (not signed: the socket's file permissions are its authentication). */
export interface SocketStatus {
  v: 1;
  state: 'waiting' | 'ready';
  fingerprint: string;
  keyIds: string[];
  /** Where administrators deliver (admin protocol URLs). */
  adminUrls: string[];
}

export function encodeFrame(type: number, payload: Uint8Array): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new RangeError('frame payload too large');
  const out = Buffer.alloc(HEADER + payload.length);
  out[0] = type;
  out.writeUInt16BE(payload.length, 1);
  out.set(payload, HEADER);
  return out;
}

/** Reassembles frames from stream chunks. wipe() zeroes whatever is buffered. */
export class FrameReader {
  private buf = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    const joined = Buffer.concat([this.buf, chunk]);
    this.buf.fill(0);
    chunk.fill(0);
    const frames: Frame[] = [];
    let o = 0;
    while (joined.length - o >= HEADER) {
      const len = joined.readUInt16BE(o + 1);
      if (joined.length - o < HEADER + len) break;
      frames.push({ type: joined[o], payload: Buffer.from(joined.subarray(o + HEADER, o + HEADER + len)) });
      o += HEADER + len;
    }
    this.buf = Buffer.from(joined.subarray(o));
    joined.fill(0);
    return frames;
  }

  wipe(): void {
    this.buf.fill(0);
    this.buf = Buffer.alloc(0);
  }
}
