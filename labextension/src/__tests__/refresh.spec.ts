import {
  DEFAULT_INTERVAL_S,
  MAX_BACKOFF_MS,
  pollFrequency,
  refreshIntervalSeconds,
  requestsPerMinute
} from '../refresh';

describe('refresh budget', () => {
  it('keeps an open tab at or under 12 requests a minute at rest', () => {
    expect(requestsPerMinute(DEFAULT_INTERVAL_S)).toBeLessThanOrEqual(12);
  });
  it('never lets the setting go faster than the budget', () => {
    expect(requestsPerMinute(refreshIntervalSeconds(1))).toBeLessThanOrEqual(
      12
    );
  });
  it('falls back to the default for a bad setting', () => {
    expect(refreshIntervalSeconds('soon')).toBe(DEFAULT_INTERVAL_S);
  });
  it('backs off on errors up to five minutes', () => {
    expect(pollFrequency(20)).toEqual({
      interval: 20000,
      backoff: true,
      max: MAX_BACKOFF_MS
    });
  });
});
