import {
  DEFAULT_PICKER,
  IPickerState,
  pickerFromSetting,
  sliceText,
  stepGpus
} from '../picker';

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

describe('stepGpus', () => {
  it('never goes below one GPU', () => {
    expect(stepGpus(1, -1, 4)).toBe(1);
  });
  it('stops at the largest server', () => {
    expect(stepGpus(2, +1, 2)).toBe(2);
  });
  it('stops at the contract bound when the pool is unknown', () => {
    expect(stepGpus(64, +1, null)).toBe(64);
  });
  it('steps by one', () => {
    expect(stepGpus(1, +1, 4)).toBe(2);
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
      filters: 'device.name=V100'
    });
  });
  it('falls back field by field on nonsense', () => {
    expect(
      pickerFromSetting({ gpus: 0, mode: 'x', percent: 150, memory: 'lots' })
    ).toEqual(DEFAULT_PICKER);
    expect(pickerFromSetting(null)).toEqual(DEFAULT_PICKER);
  });
});
