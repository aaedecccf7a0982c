import { idleFlagText, meterText, NO_READING } from '../gpumeter';

describe('meterText', () => {
  it('draws memory against the slice with the utilisation', () => {
    expect(
      meterText({
        memory_used_mib: 2048,
        memory_limit_mib: 8192,
        utilization_percent: 35,
        idle_seconds: 0,
        over_share: false
      })
    ).toEqual({ fill: 0.25, label: '2 GiB / 8 GiB · 35 %', warning: null });
  });

  it('says "no GPU reading" rather than zeros', () => {
    expect(meterText(null)).toEqual({
      fill: null,
      label: NO_READING,
      warning: null
    });
    expect(meterText(undefined).label).toBe('no GPU reading');
  });

  it('leaves unknown parts out and draws no bar without a limit', () => {
    expect(
      meterText({
        memory_used_mib: 512,
        memory_limit_mib: null,
        utilization_percent: null,
        idle_seconds: null,
        over_share: false
      })
    ).toEqual({ fill: null, label: '512 MiB', warning: null });
  });

  it('flags a process holding more than its share, bar full', () => {
    const text = meterText({
      memory_used_mib: 9000,
      memory_limit_mib: 8192,
      utilization_percent: 90,
      idle_seconds: 0,
      over_share: true
    });
    expect(text.fill).toBe(1);
    expect(text.warning).toContain('more GPU memory than its slice');
  });
});

describe('idleFlagText', () => {
  it('warns before the stop', () => {
    expect(
      idleFlagText({
        idle_seconds: 1500,
        stop_in_seconds: 300,
        action: 'shutdown'
      })
    ).toBe('GPU idle for 25 min — will be stopped in 5 min');
  });

  it('speaks of release where the slice is released', () => {
    expect(
      idleFlagText({
        idle_seconds: 1790,
        stop_in_seconds: 10,
        action: 'release'
      })
    ).toBe('GPU idle for 29 min — its GPU will be released in 1 min');
  });

  it('waits for a busy cell', () => {
    expect(
      idleFlagText({
        idle_seconds: 3600,
        stop_in_seconds: 0,
        action: 'shutdown'
      })
    ).toBe('GPU idle for 1 h — will be stopped once its running cell ends');
  });

  it('is absent when not flagged', () => {
    expect(idleFlagText(null)).toBeNull();
  });
});
