/**
 * The progress display of `npm run index-words` on stderr: on a terminal one line redrawn in place
 * (at most every `intervalMs`, and always on a phase change), otherwise plain lines, one per tenth
 * of the words and one per phase, so logs stay readable.
 */
import type { BuildProgress } from './index-builder.js';

export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

/** Seconds as mm:ss or h:mm:ss; "--:--" when unknown. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const hours = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** One progress line: bar, share, counts, rate, and the ETA (or the phase after the activations). */
export function progressLine(p: BuildProgress, width = 30, unit = 'words'): string {
  const share = p.total > 0 ? p.done / p.total : 1;
  const filled = Math.round(share * width);
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
  const counts = `${p.done.toLocaleString('en-US')}/${p.total.toLocaleString('en-US')}`;
  const rate = `${p.wordsPerSecond.toFixed(1)} ${unit}/s`;
  const tail = p.phase === 'activations' ? `ETA ${formatDuration(p.etaSeconds)}` : p.phase;
  return `${bar} ${(share * 100).toFixed(1).padStart(5)}% ${counts} ${rate} ${tail}`;
}

export class ProgressPrinter {
  private lastDraw = -Infinity;
  private lastTenth = -1;
  private lastPhase: string | undefined;
  private drawn = false;

  constructor(
    private readonly stream: ProgressStream,
    private readonly intervalMs = 200,
    private readonly now: () => number = Date.now,
    /** What is counted ("words", "images"). */
    private readonly unit = 'words',
  ) {}

  update(p: BuildProgress): void {
    const phaseChanged = p.phase !== this.lastPhase;
    this.lastPhase = p.phase;
    if (this.stream.isTTY) {
      const time = this.now();
      if (!phaseChanged && time - this.lastDraw < this.intervalMs) return;
      this.stream.write(`\r${progressLine(p, 30, this.unit)}\x1b[K`);
      this.lastDraw = time;
      this.drawn = true;
      return;
    }
    const tenth = p.total > 0 ? Math.floor((p.done / p.total) * 10) : 10;
    if (phaseChanged || tenth > this.lastTenth) this.stream.write(progressLine(p, 30, this.unit) + '\n');
    this.lastTenth = tenth;
  }

  /** Ends the redrawn line (terminal only). */
  finish(): void {
    if (this.stream.isTTY && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
