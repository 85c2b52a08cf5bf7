/**
 * The length of an uploaded audio file, for billing a transcription whose
 * answer does not say it (response_format text, srt or vtt). Only formats
 * that cost a header read or a walk over frame headers: WAV and MP3. Others
 * (m4a, ogg, webm, flac) return null and the row is marked estimated.
 */

/** Duration in whole milliseconds, or null when the format is not one read here. */
export function audioDurationMs(file: Buffer): number | null {
  return wavDurationMs(file) ?? mp3DurationMs(file)
}

/** RIFF/WAVE: the `data` chunk's size over the `fmt ` chunk's byte rate. */
export function wavDurationMs(file: Buffer): number | null {
  if (file.length < 12 || file.toString('latin1', 0, 4) !== 'RIFF' || file.toString('latin1', 8, 12) !== 'WAVE') return null
  let byteRate = 0
  let at = 12
  while (at + 8 <= file.length) {
    const id = file.toString('latin1', at, at + 4)
    const size = file.readUInt32LE(at + 4)
    const start = at + 8
    if (id === 'fmt ' && start + 12 <= file.length) byteRate = file.readUInt32LE(start + 8)
    if (id === 'data') {
      if (byteRate === 0) return null
      // A streamed WAV leaves the size at 0 or 0xFFFFFFFF: what was sent is the data.
      const available = file.length - start
      const bytes = size === 0 || size > available ? available : size
      return Math.round((bytes * 1000) / byteRate)
    }
    // Chunks are padded to an even size.
    at = start + size + (size & 1)
  }
  return null
}

/** kbps by bitrate index, per [MPEG1 L1, L2, L3, MPEG2/2.5 L1, L2 and L3] */
const BITRATES = [
  [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
  [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
  [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
  [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
]
/** Hz by sample-rate index, per version bits (0: MPEG 2.5, 2: MPEG 2, 3: MPEG 1) */
const SAMPLE_RATES: Record<number, number[]> = { 0: [11025, 12000, 8000], 2: [22050, 24000, 16000], 3: [44100, 48000, 32000] }

export interface Mp3Frame {
  /** Bytes, header included */
  length: number
  samples: number
  sampleRate: number
}

/** The MPEG audio frame whose header starts at `at`, or null (no sync, reserved values, free bitrate). */
export function mp3FrameAt(file: Buffer, at: number): Mp3Frame | null {
  if (at + 4 > file.length || file[at] !== 0xff || (file[at + 1] & 0xe0) !== 0xe0) return null
  const version = (file[at + 1] >> 3) & 3
  const layer = (file[at + 1] >> 1) & 3
  const bitrateIndex = file[at + 2] >> 4
  const rateIndex = (file[at + 2] >> 2) & 3
  const padding = (file[at + 2] >> 1) & 1
  if (version === 1 || layer === 0 || bitrateIndex === 0 || bitrateIndex === 15 || rateIndex === 3) return null
  const mpeg1 = version === 3
  // layer bits: 3 = Layer I, 2 = Layer II, 1 = Layer III
  const table = mpeg1 ? 3 - layer : layer === 3 ? 3 : 4
  const bitrate = BITRATES[table][bitrateIndex] * 1000
  const sampleRate = SAMPLE_RATES[version][rateIndex]
  if (layer === 3) return { length: (Math.floor((12 * bitrate) / sampleRate) + padding) * 4, samples: 384, sampleRate }
  const samples = layer === 2 || mpeg1 ? 1152 : 576
  return { length: Math.floor(((samples / 8) * bitrate) / sampleRate) + padding, samples, sampleRate }
}

/**
 * MP3 (MPEG audio): skips an ID3v2 tag, finds the first frame whose
 * successor is also a frame (a lone 0xFFE in tag or junk bytes is not a
 * sync), then adds up the samples of consecutive frames. Stops at the first
 * byte that is not a frame (an ID3v1 tag, junk at the end).
 */
export function mp3DurationMs(file: Buffer): number | null {
  let at = 0
  if (file.length >= 10 && file.toString('latin1', 0, 3) === 'ID3') {
    const size = ((file[6] & 0x7f) << 21) | ((file[7] & 0x7f) << 14) | ((file[8] & 0x7f) << 7) | (file[9] & 0x7f)
    at = 10 + size + (file[5] & 0x10 ? 10 : 0)
  }
  // Look for the first frame within a few KB of where the audio should start.
  const searchEnd = Math.min(file.length, at + 8192)
  let first: Mp3Frame | null = null
  for (; at < searchEnd; at++) {
    first = mp3FrameAt(file, at)
    if (first && (at + first.length >= file.length || mp3FrameAt(file, at + first.length))) break
    first = null
  }
  if (!first) return null
  // LAME's Xing/Info frame (VBR and CBR encoders write one) carries metadata, not audio.
  const head = file.toString('latin1', at + 4, Math.min(file.length, at + 44))
  if (head.includes('Xing') || head.includes('Info')) at += first.length
  let seconds = 0
  for (let frame = mp3FrameAt(file, at); frame; frame = mp3FrameAt(file, at)) {
    // A last frame cut short still counts for what it holds.
    seconds += (frame.samples / frame.sampleRate) * Math.min(1, (file.length - at) / frame.length)
    at += frame.length
  }
  return Math.round(seconds * 1000)
}
