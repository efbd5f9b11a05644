// A PNG reader for tests of pictures: 8-bit RGB or RGBA, not interlaced (what
// Chromium's screenshots are), into rows of pixels.

/** A decoded picture: `width × height` pixels of `channels` bytes each, row by row. */
export interface Picture {
  width: number;
  height: number;
  channels: number;
  pixels: Uint8Array;
}

/** Decodes a PNG. */
export async function readPng(bytes: Uint8Array): Promise<Picture> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (!signature.every((b, i) => bytes[i] === b)) throw new Error("not a PNG");
  let width = 0;
  let height = 0;
  let channels = 0;
  const data: Uint8Array[] = [];
  for (let o = 8; o < bytes.length;) {
    const length = view.getUint32(o);
    const type = new TextDecoder().decode(bytes.subarray(o + 4, o + 8));
    const body = bytes.subarray(o + 8, o + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(o + 8);
      height = view.getUint32(o + 12);
      const [depth, color, , , interlace] = body.subarray(8, 13);
      channels = color === 2 ? 3 : color === 6 ? 4 : 0;
      if (depth !== 8 || channels === 0 || interlace !== 0) {
        throw new Error(`PNG of depth ${depth}, colour type ${color}: not read here`);
      }
    } else if (type === "IDAT") {
      data.push(body);
    }
    o += 12 + length;
  }
  const stream = new Blob(data as Uint8Array<ArrayBuffer>[]).stream()
    .pipeThrough(new DecompressionStream("deflate"));
  const raw = new Uint8Array(await new Response(stream).arrayBuffer());
  const stride = width * channels;
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = pixels.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[x - channels] : 0;
      const b = up[x];
      const c = x >= channels ? up[x - channels] : 0;
      let p = 0;
      if (filter === 1) p = a;
      else if (filter === 2) p = b;
      else if (filter === 3) p = (a + b) >> 1;
      else if (filter === 4) {
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[x] = (line[x] + p) & 255;
    }
  }
  return { width, height, channels, pixels };
}

/** Rows of a picture holding at least one pixel that is not white. */
export function inkedRows(picture: Picture): boolean[] {
  const { width, height, channels, pixels } = picture;
  const rows: boolean[] = [];
  for (let y = 0; y < height; y++) {
    let ink = false;
    for (let x = 0; x < width && !ink; x++) {
      const o = (y * width + x) * channels;
      ink = pixels[o] < 240 || pixels[o + 1] < 240 || pixels[o + 2] < 240;
    }
    rows.push(ink);
  }
  return rows;
}
