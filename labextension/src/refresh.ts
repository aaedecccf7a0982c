/**
 * How often an open panel asks the server, and how it backs off.
 *
 * At rest a tab polls pool, quota and kernels once per interval (three requests), only while the
 * panel is visible and the browser tab is not hidden; start-up progress comes over one event
 * stream, not by polling. Errors back off up to five minutes.
 */

/** Requests one refresh makes: pool, quota, kernels. */
export const REQUESTS_PER_REFRESH = 3;
/** The settings' default and bounds, in seconds. */
export const DEFAULT_INTERVAL_S = 20;
export const MIN_INTERVAL_S = 15;
export const MAX_BACKOFF_MS = 5 * 60 * 1000;

/** The interval to use, in seconds, from the `refreshInterval` setting (bad values → default). */
export function refreshIntervalSeconds(setting: unknown): number {
  if (typeof setting !== 'number' || !Number.isFinite(setting)) {
    return DEFAULT_INTERVAL_S;
  }
  return Math.max(MIN_INTERVAL_S, Math.round(setting));
}

/** Requests per minute an open, visible panel makes at rest. */
export function requestsPerMinute(intervalSeconds: number): number {
  return (60 / intervalSeconds) * REQUESTS_PER_REFRESH;
}

/** The frequency for a `@lumino/polling` Poll: interval, exponential backoff on errors, capped. */
export function pollFrequency(intervalSeconds: number): {
  interval: number;
  backoff: boolean;
  max: number;
} {
  return {
    interval: intervalSeconds * 1000,
    backoff: true,
    max: MAX_BACKOFF_MS
  };
}
