import { IGpuBackend, IInfo, IPool } from '../api';
import {
  backendLabel,
  backendsOf,
  chargesText,
  chosenBackend,
  formsOf,
  migProfilesOf
} from '../backends';
import { BITFUSION_FORMS } from '../picker';

const backend = (
  name: string,
  forms: string[],
  label: string
): IGpuBackend => ({
  name,
  title: name.toUpperCase(),
  forms,
  isolation: { label, sentence: `${label}.` },
  quota_keys: []
});

const HAMI = backend(
  'hami',
  ['whole', 'percent', 'memory', 'cores', 'filters'],
  'memory and cores limited in the container'
);
const NVIDIA = backend(
  'nvidia',
  ['whole', 'memory', 'mig', 'filters'],
  'whole GPU'
);

const info = (extra: Partial<IInfo>): IInfo => ({
  backend: 'kubernetes',
  namespace: 'team',
  version: '0.1.0',
  quota_resource: 'bitfusion.io/gpu',
  max_gpus: 64,
  kernelspecs: [],
  default_kernelspec: null,
  ...extra
});

describe('chosenBackend', () => {
  const offered = info({
    gpu_backends: [HAMI, NVIDIA],
    default_gpu_backend: 'hami'
  });
  it('takes the server default until one is chosen', () => {
    expect(chosenBackend(offered, null)?.name).toBe('hami');
  });
  it('takes the chosen one', () => {
    expect(chosenBackend(offered, 'nvidia')?.name).toBe('nvidia');
  });
  it('falls back to the first when the chosen one is no longer offered', () => {
    expect(chosenBackend(offered, 'nvidia-mps')?.name).toBe('hami');
  });
  it('is null for a server that lists no backends', () => {
    expect(chosenBackend(info({}), null)).toBeNull();
    expect(backendsOf(null)).toEqual([]);
    expect(formsOf(null)).toEqual(BITFUSION_FORMS);
  });
});

describe('backendLabel', () => {
  it('puts the isolation label beside the title', () => {
    expect(backendLabel(HAMI)).toBe(
      'HAMI · memory and cores limited in the container'
    );
  });
});

describe('migProfilesOf', () => {
  it('reads the profiles the server lists in the backend pool', () => {
    const pool = {
      gpu_pools: {
        nvidia: {
          backend: 'nvidia',
          mig_profiles: ['mig-1g.10gb', 'mig-3g.40gb'],
          warnings: []
        }
      }
    } as unknown as IPool;
    expect(migProfilesOf(pool, 'nvidia')).toEqual([
      'mig-1g.10gb',
      'mig-3g.40gb'
    ]);
    expect(migProfilesOf(pool, 'hami')).toEqual([]);
    expect(migProfilesOf(null, 'nvidia')).toEqual([]);
  });
});

describe('chargesText', () => {
  it('lists each resource the slice costs', () => {
    expect(
      chargesText([
        {
          resource: 'nvidia.com/gpu',
          amount: 1,
          unit: 'GPUs',
          quota_keys: [],
          enforced_by: ''
        },
        {
          resource: 'nvidia.com/gpumem',
          amount: 8192,
          unit: 'MiB of GPU memory',
          quota_keys: [],
          enforced_by: ''
        }
      ])
    ).toBe(
      '1 GPUs (nvidia.com/gpu), 8192 MiB of GPU memory (nvidia.com/gpumem)'
    );
  });
});
