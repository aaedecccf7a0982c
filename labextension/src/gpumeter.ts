/**
 * What the running-kernels list says of a kernel's GPU meter: the bar's fill, its numbers, and
 * the idle flag. Pure, so that jest pins the wording.
 */
import { IGpuIdle, IGpuReading } from './api';
import { formatAge, formatMemory } from './format';

export const NO_READING = 'no GPU reading';

export interface IMeterText {
  /** Fill of the bar, 0–1; null when the limit or the use is unknown (no bar is drawn). */
  fill: number | null;
  /** `2 GiB / 8 GiB · 35 %`, or `no GPU reading`. */
  label: string;
  /** Set when the processes hold more than the slice allows. */
  warning: string | null;
}

export function meterText(reading: IGpuReading | null | undefined): IMeterText {
  if (!reading) {
    return { fill: null, label: NO_READING, warning: null };
  }
  const used = reading.memory_used_mib;
  const limit = reading.memory_limit_mib;
  const parts: string[] = [];
  if (used !== null) {
    parts.push(
      limit !== null
        ? `${formatMemory(used)} / ${formatMemory(limit)}`
        : formatMemory(used)
    );
  }
  if (reading.utilization_percent !== null) {
    parts.push(`${reading.utilization_percent} %`);
  }
  const fill =
    used !== null && limit !== null && limit > 0
      ? Math.max(0, Math.min(1, used / limit))
      : null;
  return {
    fill,
    label: parts.join(' · ') || NO_READING,
    warning: reading.over_share
      ? 'holds more GPU memory than its slice (a framework ignored the cap)'
      : null
  };
}

/** `idle for 25 min — will be stopped in 5 min` (or the release wording). */
export function idleFlagText(idle: IGpuIdle | null | undefined): string | null {
  if (!idle) {
    return null;
  }
  const what =
    idle.action === 'release' ? 'its GPU will be released' : 'will be stopped';
  const when =
    idle.stop_in_seconds > 0
      ? `in ${formatAge(Math.ceil(idle.stop_in_seconds / 60) * 60)}`
      : 'once its running cell ends';
  return `GPU idle for ${formatAge(idle.idle_seconds)} — ${what} ${when}`;
}
