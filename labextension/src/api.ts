/** What the server extension answers (see bf_jupyter/server/openapi.yaml), typed. */
import { followEvents, requestAPI } from './request';

export type Backend = 'local' | 'kubernetes';

export interface IInfo {
  backend: Backend;
  namespace: string | null;
  version: string;
  quota_resource: string;
  /** The most GPUs one slice may ask for (the slice contract's bound). */
  max_gpus: number;
  kernelspecs: { name: string; display_name: string }[];
  default_kernelspec: string | null;
  /** The GPU backends offered here, the first the default (absent from older servers). */
  gpu_backends?: IGpuBackend[];
  default_gpu_backend?: string;
}

/** What one GPU backend honours and isolates (GET info). */
export interface IGpuBackend {
  name: string;
  title: string;
  /** The slice forms it honours: whole, percent, memory, cores, mig, shared, filters. */
  forms: string[];
  isolation: IIsolation;
  quota_keys: string[];
}

export interface IIsolation {
  label: string;
  sentence: string;
}

/** One GPU backend's pool (GET pool's gpu_pools, Kubernetes only). */
export interface IBackendPool {
  backend: string;
  mig_profiles?: string[];
  warnings: string[];
}

export interface ICharge {
  resource: string;
  amount: number;
  unit: string;
  quota_keys: string[];
  enforced_by: string;
}

export interface IGpu {
  index: number;
  name: string | null;
  memory_mib: number;
  free_mib: number;
  used_fraction: number;
  free_fraction: number;
}

export interface IServer {
  index: number;
  address: string;
  status: string;
  gpus: IGpu[];
  leases: number;
}

export interface INode {
  name: string;
  allocatable_units: number;
  used_units: number | null;
  allocatable_gpus: number;
}

export interface IPool {
  backend: Backend;
  simulated: boolean;
  servers: IServer[];
  nodes: INode[];
  total_gpus: number;
  free_fraction: number;
  largest_server_gpus: number | null;
  gpu_memory_mib: number | null;
  warnings: string[];
  read_at: string;
  gpu_backends?: string[];
  gpu_pools?: Record<string, IBackendPool>;
}

export interface IQuota {
  backend: Backend;
  namespace: string | null;
  has_quota: boolean;
  message: string;
  source: string | null;
  unit: string;
  hard_units: number | null;
  used_units: number | null;
  remaining_units: number | null;
  hard_gpus: number | null;
  used_gpus: number | null;
  remaining_gpus: number | null;
}

export interface IPrice {
  slice: string;
  description: string;
  /** bitfusion.io/gpu units on the bitfusion backend; null on others (see `charges`). */
  units: number | null;
  gpus: number | null;
  fits: boolean;
  reason: string | null;
  field: string | null;
  backend?: string;
  charges?: ICharge[];
  isolation?: IIsolation | null;
}

export interface IKernel {
  id: string;
  slice: string;
  description: string;
  units: number | null;
  kernelspec: string;
  path: string | null;
  state: string;
  pod: string | null;
  started: number | null;
  age_seconds: number | null;
  reason: string | null;
  /** The kernel's GPU meter; null: no GPU reading. */
  gpu?: IGpuReading | null;
  /** Set once its GPU has been idle long enough to be flagged. */
  gpu_idle?: IGpuIdle | null;
}

export interface IGpuReading {
  memory_used_mib: number | null;
  memory_limit_mib: number | null;
  utilization_percent: number | null;
  idle_seconds: number | null;
  over_share: boolean;
}

export interface IGpuIdle {
  idle_seconds: number;
  stop_in_seconds: number;
  action: 'shutdown' | 'release';
}

export interface ILaunched {
  id: string;
  slice: string;
  kernelspec: string;
  backend?: string;
  state: 'starting';
  units: number | null;
}

export interface IProgressEvent {
  kernel_id: string;
  stage: string;
  message: string;
  time: number;
  final: boolean;
}

export const getInfo = (): Promise<IInfo> => requestAPI<IInfo>('info');
export const getPool = (): Promise<IPool> => requestAPI<IPool>('pool');
export const getQuota = (): Promise<IQuota> => requestAPI<IQuota>('quota');
export const getKernels = (): Promise<IKernel[]> =>
  requestAPI<IKernel[]>('kernels');

/** The query of GET price: the slice, and the GPU backend when one is chosen. */
export function priceQuery(slice: string, backend?: string | null): string {
  const query = `price?slice=${encodeURIComponent(slice)}`;
  return backend ? `${query}&backend=${encodeURIComponent(backend)}` : query;
}

export function getPrice(
  slice: string,
  signal?: AbortSignal,
  backend?: string | null
): Promise<IPrice> {
  return requestAPI<IPrice>(priceQuery(slice, backend), { signal });
}

export function launchKernel(request: {
  slice: string;
  kernelspec?: string;
  backend?: string;
  path?: string;
}): Promise<ILaunched> {
  return requestAPI<ILaunched>('kernels', {
    method: 'POST',
    body: JSON.stringify(request)
  });
}

export function stopKernel(id: string): Promise<void> {
  return requestAPI<void>(`kernels/${encodeURIComponent(id)}`, {
    method: 'DELETE'
  });
}

/** Follow a kernel's start-up; resolves with the final event (ready or failed). */
export async function followProgress(
  id: string,
  onEvent: (event: IProgressEvent) => void,
  signal?: AbortSignal
): Promise<IProgressEvent | null> {
  let last: IProgressEvent | null = null;
  await followEvents(
    `kernels/${encodeURIComponent(id)}/events`,
    frame => {
      const event = JSON.parse(frame.data) as IProgressEvent;
      last = event;
      onEvent(event);
    },
    signal
  );
  return last;
}
