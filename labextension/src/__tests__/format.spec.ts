import {
  formatAge,
  formatGpus,
  formatMemory,
  formatPercent,
  nodesCapacity
} from '../format';

describe('formatters', () => {
  it.each([
    [45, '45 s'],
    [180, '3 min'],
    [7500, '2 h 5 min'],
    [7200, '2 h'],
    [97200, '1 d 3 h']
  ])('formats an age of %d s as %s', (seconds, text) => {
    expect(formatAge(seconds)).toBe(text);
  });
  it('leaves an unknown age empty', () => {
    expect(formatAge(null)).toBe('');
  });
  it('says GPUs in the plural only above one', () => {
    expect([formatGpus(0.5), formatGpus(1), formatGpus(2.25)]).toEqual([
      '0.5 GPU',
      '1 GPU',
      '2.25 GPUs'
    ]);
  });
  it('clamps and rounds percentages', () => {
    expect([formatPercent(0.504), formatPercent(1.2)]).toEqual([
      '50 %',
      '100 %'
    ]);
  });
  it('writes memory in GiB from one GiB up', () => {
    expect([formatMemory(16384), formatMemory(512)]).toEqual([
      '16 GiB',
      '512 MiB'
    ]);
  });
});

describe('nodesCapacity', () => {
  const node = (allocatable: number, used: number | null) => ({
    name: `n${allocatable}`,
    allocatable_units: allocatable,
    used_units: used,
    allocatable_gpus: allocatable / 100
  });
  it('adds up what the nodes offer and what is free of it', () => {
    expect(nodesCapacity([node(200, 50), node(400, 100)])).toEqual({
      gpus: 6,
      freeFraction: 0.75
    });
  });
  it("says nothing about free capacity when one node's use is unknown", () => {
    expect(nodesCapacity([node(200, 50), node(200, null)])).toEqual({
      gpus: 4,
      freeFraction: null
    });
  });
});
