/** The model on a server with several GPU backends: what it asks the server, and how often. */
import * as api from '../api';
import { GpuSlicesModel } from '../model';
import { REQUESTS_PER_REFRESH } from '../refresh';

jest.mock('../api');
const mocked = api as jest.Mocked<typeof api>;
// The refreshes are called by hand here: lumino's Poll would leave its timer behind.
jest.mock('@lumino/polling', () => ({
  Poll: class {
    frequency: unknown;
    start = async (): Promise<void> => undefined;
    refresh = async (): Promise<void> => undefined;
    dispose = (): void => undefined;
  }
}));

// The model debounces pricing with window.setTimeout; under Node the global timers stand in.
(globalThis as unknown as { window: typeof globalThis }).window = globalThis;

const HAMI: api.IGpuBackend = {
  name: 'hami',
  title: 'HAMi',
  forms: ['whole', 'percent', 'memory', 'cores', 'filters'],
  isolation: {
    label: 'memory and cores limited in the container',
    sentence: '.'
  },
  quota_keys: []
};
const NVIDIA: api.IGpuBackend = {
  name: 'nvidia',
  title: 'NVIDIA device plugin',
  forms: ['whole', 'memory', 'mig', 'filters'],
  isolation: { label: 'whole GPU', sentence: '.' },
  quota_keys: []
};
const INFO = {
  backend: 'kubernetes',
  namespace: 'team',
  version: '0.1.0',
  quota_resource: 'bitfusion.io/gpu',
  max_gpus: 64,
  kernelspecs: [{ name: 'k', display_name: 'K' }],
  default_kernelspec: 'k',
  gpu_backends: [HAMI, NVIDIA],
  default_gpu_backend: 'hami'
} as api.IInfo;
const POOL = {
  gpu_pools: {
    nvidia: { backend: 'nvidia', mig_profiles: ['mig-1g.10gb'], warnings: [] }
  }
} as unknown as api.IPool;
const PRICE = {
  fits: true,
  units: null,
  gpus: null,
  charges: []
} as unknown as api.IPrice;

const openers = {
  currentDirectory: () => '',
  currentNotebookPath: () => null,
  open: async () => undefined
};

async function settle(): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, 300)); // past the price debounce
}

beforeEach(() => {
  jest.resetAllMocks();
  mocked.getInfo.mockResolvedValue(INFO);
  mocked.getPool.mockResolvedValue(POOL);
  mocked.getQuota.mockResolvedValue({} as api.IQuota);
  mocked.getKernels.mockResolvedValue([]);
  mocked.getPrice.mockResolvedValue(PRICE);
});

describe('GpuSlicesModel on several GPU backends', () => {
  it('prices on the default backend, then on the chosen one with its forms', async () => {
    const model = new GpuSlicesModel(openers);
    model.start();
    await settle();
    expect(model.backend?.name).toBe('hami');
    expect(mocked.getPrice).toHaveBeenLastCalledWith(
      '1x50%',
      expect.anything(),
      'hami'
    );

    await model.refresh();
    model.setGpuBackend('nvidia');
    await settle();
    // nvidia has no percent: whole GPUs, priced there
    expect(model.slice).toBe('1');
    expect(mocked.getPrice).toHaveBeenLastCalledWith(
      '1',
      expect.anything(),
      'nvidia'
    );

    model.setPicker({ mode: 'mig' });
    await settle();
    expect(model.slice).toBe('1xmig-1g.10gb'); // the profile the pool lists
    model.dispose();
  });

  it('makes only the pool, quota and kernels requests on a refresh', async () => {
    const model = new GpuSlicesModel(openers);
    model.start();
    await settle();
    jest.clearAllMocks();

    await model.refresh();
    await settle();

    const calls = [
      mocked.getPool,
      mocked.getQuota,
      mocked.getKernels,
      mocked.getPrice,
      mocked.getInfo
    ].reduce((sum, fn) => sum + fn.mock.calls.length, 0);
    expect(calls).toBe(REQUESTS_PER_REFRESH);
    model.dispose();
  });
});
