/**
 * The slice picker's state and the slice text it stands for.
 *
 * The server owns the slice contract: it parses this text with GpuSlice, prices it in quota units
 * (GET price) and says whether it fits. This module only writes the text form (`1x50%`, `2x8Gi`,
 * then Bitfusion filters) from the picker's controls; it never parses or prices a slice.
 */

export type ShareMode = 'percent' | 'memory' | 'mig' | 'shared' | 'whole';
export type MemoryUnit = 'Mi' | 'Gi';

/** The share modes in the order the picker shows them (each is a slice form of GET info). */
const MODES: ShareMode[] = ['percent', 'memory', 'mig', 'shared', 'whole'];

export interface IPickerState {
  /** GPUs, all from one Bitfusion server. */
  gpus: number;
  /** A share of each GPU in whole percent, or an amount of memory per GPU. */
  mode: ShareMode;
  percent: number;
  memory: number;
  memoryUnit: MemoryUnit;
  /** Filters, e.g. `device.name=V100`, separated by spaces. */
  filters: string;
  /** Compute share in percent of each GPU, where the backend honours `cores`; null for none. */
  cores: number | null;
  /** The MIG profile of the `mig` mode, one the server lists in the backend's pool. */
  migProfile: string;
}

export const DEFAULT_PICKER: IPickerState = {
  gpus: 1,
  mode: 'percent',
  percent: 50,
  memory: 8,
  memoryUnit: 'Gi',
  filters: '',
  cores: null,
  migProfile: ''
};

/** Every form, for a server that does not list its backends' forms (Bitfusion's as before). */
export const BITFUSION_FORMS = ['whole', 'percent', 'memory', 'filters'];

/**
 * The share modes a backend offers, from its `forms` in GET info, in picker order. `whole`
 * shows only where no percent stands for it (a percent of 100 is a whole GPU).
 */
export function modesFor(forms: readonly string[]): ShareMode[] {
  const modes = MODES.filter(mode => forms.includes(mode));
  return forms.includes('percent')
    ? modes.filter(mode => mode !== 'whole')
    : modes;
}

/**
 * The picker's mode on a backend with `forms`: kept when offered; a share becomes whole GPUs
 * where no share is offered; else the backend's first mode.
 */
export function fitMode(
  state: IPickerState,
  forms: readonly string[]
): ShareMode {
  const modes = modesFor(forms);
  if (modes.includes(state.mode)) {
    return state.mode;
  }
  if (state.mode === 'percent' && modes.includes('whole')) {
    return 'whole';
  }
  return modes[0] ?? state.mode;
}

/**
 * The slice text for the picker's state on a backend with `forms`, e.g. `1x50%`,
 * `2x8Gi device.name=V100`, `1x8Gi cores=30`, `1xmig-1g.10gb`, `1xshared`, `2`: only the parts
 * that backend honours are written (the server parses and prices the text).
 */
export function sliceText(
  state: IPickerState,
  forms: readonly string[] = BITFUSION_FORMS
): string {
  const mode = fitMode(state, forms);
  const share = {
    percent: `x${state.percent}%`,
    memory: `x${state.memory}${state.memoryUnit}`,
    mig: `x${state.migProfile.trim()}`,
    shared: 'xshared',
    whole: ''
  }[mode];
  const parts = [`${state.gpus}${share}`];
  if (forms.includes('cores') && state.cores !== null) {
    parts.push(`cores=${state.cores}`);
  }
  const filters = state.filters.trim().replace(/\s+/g, ' ');
  if (forms.includes('filters') && filters) {
    parts.push(filters);
  }
  return parts.join(' ');
}

/**
 * The most GPUs the picker offers: the slice contract's bound (`max_gpus` of GET info) and the
 * largest server of the pool, whichever are known; null while neither is.
 */
export function gpuLimit(
  maxGpus: number | null,
  largest: number | null
): number | null {
  const known = [maxGpus, largest].filter(
    (n): n is number => n !== null && n > 0
  );
  return known.length ? Math.min(...known) : null;
}

/** GPUs after a stepper press: whole, at least 1, at most `limit` (see `gpuLimit`) when known. */
export function stepGpus(
  current: number,
  delta: number,
  limit: number | null
): number {
  const stepped = Math.max(1, Math.round(current + delta));
  return limit === null ? stepped : Math.min(limit, stepped);
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
    gpus: whole(raw.gpus, 1, Number.MAX_SAFE_INTEGER, DEFAULT_PICKER.gpus),
    mode: raw.mode === 'memory' ? 'memory' : 'percent',
    percent: whole(raw.percent, 1, 100, DEFAULT_PICKER.percent),
    memory: whole(raw.memory, 1, 1 << 20, DEFAULT_PICKER.memory),
    memoryUnit: raw.memoryUnit === 'Mi' ? 'Mi' : 'Gi',
    filters: typeof raw.filters === 'string' ? raw.filters : '',
    cores: null,
    migProfile: ''
  };
}
