/**
 * The panel's state: pool, quota, GPU kernels, the picker and its price, and kernels starting.
 *
 * Refreshes with a `@lumino/polling` Poll that stands by while the panel is hidden or the browser
 * tab is in the background, and backs off on errors; a launch follows its progress over one event
 * stream. Views listen to `changed` and re-render.
 */
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import {
  IGpuBackend,
  IInfo,
  IKernel,
  IPool,
  IPrice,
  IProgressEvent,
  IQuota,
  followProgress,
  getInfo,
  getKernels,
  getPool,
  getPrice,
  getQuota,
  launchKernel,
  stopKernel
} from './api';
import { chosenBackend, formsOf, migProfilesOf } from './backends';
import { DEFAULT_PICKER, IPickerState, fitMode, sliceText } from './picker';
import { DEFAULT_INTERVAL_S, pollFrequency } from './refresh';

/** Where a kernel on a slice goes once it is ready. */
export type LaunchTarget = 'notebook' | 'console' | 'switch';

/** What the panel asks the application to do with a ready kernel (see index.ts). */
export interface IKernelOpeners {
  /** The folder new notebooks and consoles go to, and the kernel's working directory. */
  currentDirectory(): string;
  /** The path of the notebook in focus, or null when none is. */
  currentNotebookPath(): string | null;
  open(
    target: LaunchTarget,
    kernelId: string,
    directory: string
  ): Promise<void>;
}

export interface IStartup {
  key: number;
  id: string | null;
  slice: string;
  target: LaunchTarget;
  events: IProgressEvent[];
  state: 'starting' | 'ready' | 'failed';
  reason: string | null;
}

const PRICE_DELAY_MS = 250;
const STARTUPS_KEPT = 3;

export class GpuSlicesModel {
  info: IInfo | null = null;
  pool: IPool | null = null;
  quota: IQuota | null = null;
  kernels: IKernel[] = [];
  errors: { pool?: string; quota?: string; kernels?: string; info?: string } =
    {};
  picker: IPickerState = { ...DEFAULT_PICKER };
  price: IPrice | null = null;
  priceError: string | null = null;
  pricing = false;
  startups: IStartup[] = [];
  kernelspec: string | null = null;
  /** The GPU backend picked from GET info's list; null: the server's default. */
  gpuBackend: string | null = null;

  constructor(private readonly _openers: IKernelOpeners) {
    this._poll = new Poll({
      auto: false,
      factory: () => this.refresh(),
      frequency: pollFrequency(DEFAULT_INTERVAL_S),
      name: 'bf-jupyter:refresh',
      standby: () => !this._visible || 'when-hidden'
    });
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Start polling (called once the panel exists). */
  start(): void {
    void this._loadInfo();
    void this._poll.start();
    this._requestPrice();
  }

  /** The panel was shown or hidden: poll only while someone can see it. */
  setVisible(visible: boolean): void {
    const wasHidden = !this._visible;
    this._visible = visible;
    if (visible && wasHidden) {
      void this._poll.refresh();
    }
  }

  setInterval(seconds: number): void {
    this._poll.frequency = pollFrequency(seconds);
  }

  /** Read pool, quota and kernels now (three requests; the server caches the first two). */
  async refresh(): Promise<void> {
    const [pool, quota, kernels] = await Promise.allSettled([
      getPool(),
      getQuota(),
      getKernels()
    ]);
    this.pool = pool.status === 'fulfilled' ? pool.value : this.pool;
    this.quota = quota.status === 'fulfilled' ? quota.value : this.quota;
    this.kernels =
      kernels.status === 'fulfilled' ? kernels.value : this.kernels;
    const before = this.slice;
    this._fitPicker(); // the pool may now list the MIG profiles a mig slice names
    if (this.slice !== before) {
      this._requestPrice();
    }
    this.errors = {
      pool: reasonOf(pool),
      quota: reasonOf(quota),
      kernels: reasonOf(kernels),
      info: this.errors.info
    };
    this._changed.emit();
    if (pool.status === 'rejected' && quota.status === 'rejected') {
      throw pool.reason; // the server is unreachable: let the poll back off
    }
  }

  setPicker(change: Partial<IPickerState>): void {
    this.picker = { ...this.picker, ...change };
    this._fitPicker();
    this._changed.emit();
    this._requestPrice();
  }

  setKernelspec(name: string): void {
    this.kernelspec = name;
    this._changed.emit();
  }

  /** The GPU backend slices are priced and launched on (null before GET info answers). */
  get backend(): IGpuBackend | null {
    return chosenBackend(this.info, this.gpuBackend);
  }

  /** The slice forms the chosen backend honours: the picker offers only these. */
  get forms(): string[] {
    return formsOf(this.backend);
  }

  /** The MIG profiles the chosen backend's nodes advertise (GET pool). */
  get migProfiles(): string[] {
    const backend = this.backend;
    return backend ? migProfilesOf(this.pool, backend.name) : [];
  }

  /** The slice text of the picker on the chosen backend. */
  get slice(): string {
    return sliceText(this.picker, this.forms);
  }

  /** Choose the GPU backend: the picker keeps what that backend honours and prices anew. */
  setGpuBackend(name: string): void {
    this.gpuBackend = name;
    this._fitPicker();
    this._changed.emit();
    this._requestPrice();
  }

  /** Why launching is not possible right now, or null when it is. */
  get launchBlocked(): string | null {
    if (this.pricing) {
      return 'Checking the slice…';
    }
    if (this.priceError) {
      return this.priceError;
    }
    if (this.price && !this.price.fits) {
      return this.price.reason;
    }
    if (this.info && this.info.kernelspecs.length === 0) {
      return 'No GPU kernelspec is installed: run bf-jupyter kernelspec install';
    }
    return null;
  }

  /** Start a kernel on the picked slice, follow it to ready, then open it as `target`. */
  async launch(target: LaunchTarget): Promise<void> {
    const slice = this.slice;
    const backend = this.backend?.name;
    const startup: IStartup = {
      key: ++this._startupKeys,
      id: null,
      slice,
      target,
      events: [],
      state: 'starting',
      reason: null
    };
    this.startups = [startup, ...this.startups].slice(0, STARTUPS_KEPT);
    this._changed.emit();
    const directory = this._openers.currentDirectory();
    const notebook =
      target === 'switch' ? this._openers.currentNotebookPath() : null;
    try {
      if (target === 'switch' && !notebook) {
        throw new Error(
          'Open a notebook first: its kernel is the one to switch'
        );
      }
      const launched = await launchKernel({
        slice,
        kernelspec: this.kernelspec ?? undefined,
        backend,
        path: notebook ?? directory
      });
      startup.id = launched.id;
      void this.refresh();
      const final = await followProgress(launched.id, event => {
        startup.events = [...startup.events, event];
        this._changed.emit();
      });
      if (!final || final.stage !== 'ready') {
        throw new Error(final?.message ?? 'The start-up stream ended early');
      }
      await this._openers.open(target, launched.id, directory);
      startup.state = 'ready';
    } catch (error) {
      startup.state = 'failed';
      startup.reason = (error as Error).message;
    }
    this._changed.emit();
    void this.refresh();
  }

  async stop(id: string): Promise<void> {
    try {
      await stopKernel(id);
    } catch (error) {
      this.errors = { ...this.errors, kernels: (error as Error).message };
    }
    await this.refresh().catch(() => undefined);
  }

  dismissStartup(key: number): void {
    this.startups = this.startups.filter(s => s.key !== key);
    this._changed.emit();
  }

  dispose(): void {
    this._poll.dispose();
    window.clearTimeout(this._priceTimer);
    this._priceAbort?.abort();
    Signal.clearData(this);
  }

  private async _loadInfo(): Promise<void> {
    try {
      this.info = await getInfo();
      this.kernelspec = this.kernelspec ?? this.info.default_kernelspec;
      this.errors = { ...this.errors, info: undefined };
      if (this.backend) {
        // the default backend may not honour the picker's mode: fit it, then price it there
        this._fitPicker();
        this._requestPrice();
      }
    } catch (error) {
      this.errors = { ...this.errors, info: (error as Error).message };
    }
    this._changed.emit();
  }

  /** Keep the picker to what the chosen backend honours: an offered mode, a listed MIG profile. */
  private _fitPicker(): void {
    const mode = fitMode(this.picker, this.forms);
    const profiles = this.migProfiles;
    const migProfile =
      mode === 'mig' && !this.picker.migProfile && profiles.length > 0
        ? profiles[0]
        : this.picker.migProfile;
    if (mode !== this.picker.mode || migProfile !== this.picker.migProfile) {
      this.picker = { ...this.picker, mode, migProfile };
    }
  }

  /** Price the picked slice once the controls have been still for a moment. */
  private _requestPrice(): void {
    window.clearTimeout(this._priceTimer);
    this.pricing = true;
    this._priceTimer = window.setTimeout(async () => {
      this._priceAbort?.abort();
      const abort = (this._priceAbort = new AbortController());
      try {
        this.price = await getPrice(
          this.slice,
          abort.signal,
          this.backend?.name
        );
        this.priceError = null;
      } catch (error) {
        if (abort.signal.aborted) {
          return;
        }
        this.price = null;
        this.priceError = (error as Error).message;
      }
      this.pricing = false;
      this._changed.emit();
    }, PRICE_DELAY_MS);
  }

  private _changed = new Signal<this, void>(this);
  private _poll: Poll;
  private _visible = false;
  private _startupKeys = 0;
  private _priceTimer = 0;
  private _priceAbort: AbortController | null = null;
}

function reasonOf(result: PromiseSettledResult<unknown>): string | undefined {
  return result.status === 'rejected'
    ? String((result.reason as Error)?.message ?? result.reason)
    : undefined;
}
