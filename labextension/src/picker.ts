/**
 * The slice picker's state and the slice text it stands for.
 *
 * The server owns the slice contract: it parses this text with GpuSlice, prices it in quota units
 * (GET price) and says whether it fits. This module only writes the text form (`1x50%`, `2x8Gi`,
 * then Bitfusion filters) from the picker's controls; it never parses or prices a slice.
 */

export type ShareMode = 'percent' | 'memory';
export type MemoryUnit = 'Mi' | 'Gi';

export interface IPickerState {
  /** GPUs, all from one Bitfusion server. */
  gpus: number;
  /** A share of each GPU in whole percent, or an amount of memory per GPU. */
  mode: ShareMode;
  percent: number;
  memory: number;
  memoryUnit: MemoryUnit;
  /** Bitfusion filters, e.g. `device.name=V100`, separated by spaces. */
  filters: string;
}

export const DEFAULT_PICKER: IPickerState = {
  gpus: 1,
  mode: 'percent',
  percent: 50,
  memory: 8,
  memoryUnit: 'Gi',
  filters: ''
};

/** The most GPUs one slice may ask for, whatever the pool (the contract's bound). */
export const MAX_GPUS = 64;

/** The slice text for the picker's state, e.g. `1x50%`, `2x8Gi device.name=V100`. */
export function sliceText(state: IPickerState): string {
  const share =
    state.mode === 'percent'
      ? `${state.percent}%`
      : `${state.memory}${state.memoryUnit}`;
  const filters = state.filters.trim().replace(/\s+/g, ' ');
  return filters
    ? `${state.gpus}x${share} ${filters}`
    : `${state.gpus}x${share}`;
}

/** GPUs after a stepper press: whole, at least 1, at most `max` (the largest server, if known). */
export function stepGpus(
  current: number,
  delta: number,
  max: number | null
): number {
  const limit = Math.min(max && max > 0 ? max : MAX_GPUS, MAX_GPUS);
  return Math.max(1, Math.min(limit, Math.round(current + delta)));
}

/**
 * The picker's state from the `defaultSlice` setting, each field falling back to the default
 * when missing or of the wrong type (a hand-edited setting must not break the panel).
 */
export function pickerFromSetting(value: unknown): IPickerState {
  const raw = (value && typeof value === 'object' ? value : {}) as Record<
    string,
    unknown
  >;
  const whole = (v: unknown, low: number, high: number, fallback: number) =>
    typeof v === 'number' && Number.isInteger(v) && v >= low && v <= high
      ? v
      : fallback;
  return {
    gpus: whole(raw.gpus, 1, MAX_GPUS, DEFAULT_PICKER.gpus),
    mode: raw.mode === 'memory' ? 'memory' : 'percent',
    percent: whole(raw.percent, 1, 100, DEFAULT_PICKER.percent),
    memory: whole(raw.memory, 1, 1 << 20, DEFAULT_PICKER.memory),
    memoryUnit: raw.memoryUnit === 'Mi' ? 'Mi' : 'Gi',
    filters: typeof raw.filters === 'string' ? raw.filters : ''
  };
}
