import {
  DEFAULT_PICKER,
  IPickerState,
  fitMode,
  modesFor,
  pickerFromSetting,
  sliceText,
  gpuLimit,
  stepGpus
} from '../picker';

const HAMI = ['whole', 'percent', 'memory', 'cores', 'filters'];
const NVIDIA = ['whole', 'memory', 'mig', 'filters'];
const TIME_SLICING = ['memory', 'mig', 'shared', 'filters'];

describe('sliceText', () => {
  const cases: Array<[Partial<IPickerState>, string]> = [
    [{}, '1x50%'],
    [{ gpus: 2, percent: 100 }, '2x100%'],
    [{ mode: 'memory', memory: 8, memoryUnit: 'Gi', gpus: 2 }, '2x8Gi'],
    [{ mode: 'memory', memory: 8000, memoryUnit: 'Mi' }, '1x8000Mi'],
    [
      { filters: '  device.name=V100   server.hostname=gpu1 ' },
      '1x50% device.name=V100 server.hostname=gpu1'
    ]
  ];
  it.each(cases)('writes %j as %s', (change, text) => {
    expect(sliceText({ ...DEFAULT_PICKER, ...change })).toBe(text);
  });
});

describe('sliceText on a backend', () => {
  const cases: Array<[string, string[], Partial<IPickerState>, string]> = [
    ['hami', HAMI, { mode: 'memory', cores: 30 }, '1x8Gi cores=30'],
    [
      'nvidia',
      NVIDIA,
      { mode: 'mig', migProfile: 'mig-1g.10gb' },
      '1xmig-1g.10gb'
    ],
    ['nvidia', NVIDIA, { mode: 'whole', gpus: 2 }, '2'],
    ['nvidia', NVIDIA, { mode: 'percent' }, '1'], // no percent there: its first mode
    ['time-slicing', TIME_SLICING, { mode: 'shared' }, '1xshared'],
    ['nvidia', NVIDIA, { mode: 'memory', cores: 30 }, '1x8Gi'], // no cores there
    ['hami', ['percent'], { filters: 'device.name=V100' }, '1x50%'] // no filters there
  ];
  it.each(cases)('on %s writes %j as %s', (_name, forms, change, text) => {
    expect(sliceText({ ...DEFAULT_PICKER, ...change }, forms)).toBe(text);
  });
});

describe('modesFor', () => {
  it('offers only the forms the backend honours, in picker order', () => {
    expect(modesFor(HAMI)).toEqual(['percent', 'memory']);
    expect(modesFor(NVIDIA)).toEqual(['memory', 'mig', 'whole']);
    expect(modesFor(TIME_SLICING)).toEqual(['memory', 'mig', 'shared']);
  });
  it('keeps an offered mode and replaces one the backend lacks', () => {
    expect(fitMode({ ...DEFAULT_PICKER, mode: 'memory' }, NVIDIA)).toBe(
      'memory'
    );
    expect(fitMode({ ...DEFAULT_PICKER, mode: 'shared' }, HAMI)).toBe(
      'percent'
    );
  });
});

describe('stepGpus', () => {
  it('never goes below one GPU', () => {
    expect(stepGpus(1, -1, 4)).toBe(1);
  });
  it('stops at the largest server', () => {
    expect(stepGpus(2, +1, 2)).toBe(2);
  });
  it('has no upper bound while no limit is known', () => {
    expect(stepGpus(64, +1, null)).toBe(65);
  });
  it('steps by one', () => {
    expect(stepGpus(1, +1, 4)).toBe(2);
  });
});

describe('gpuLimit', () => {
  it('is the smaller of the contract bound and the largest server', () => {
    expect(gpuLimit(64, 4)).toBe(4);
    expect(gpuLimit(8, 16)).toBe(8);
  });
  it('is the contract bound from GET info while the pool is unknown', () => {
    expect(gpuLimit(64, null)).toBe(64);
  });
  it('is unknown before GET info and the pool answer', () => {
    expect(gpuLimit(null, null)).toBeNull();
  });
});

describe('pickerFromSetting', () => {
  it('reads a complete setting', () => {
    expect(
      pickerFromSetting({
        gpus: 2,
        mode: 'memory',
        percent: 25,
        memory: 4,
        memoryUnit: 'Gi',
        filters: 'device.name=V100'
      })
    ).toEqual({
      gpus: 2,
      mode: 'memory',
      percent: 25,
      memory: 4,
      memoryUnit: 'Gi',
      filters: 'device.name=V100',
      cores: null,
      migProfile: ''
    });
  });
  it('falls back field by field on nonsense', () => {
    expect(
      pickerFromSetting({ gpus: 0, mode: 'x', percent: 150, memory: 'lots' })
    ).toEqual(DEFAULT_PICKER);
    expect(pickerFromSetting(null)).toEqual(DEFAULT_PICKER);
  });
});
