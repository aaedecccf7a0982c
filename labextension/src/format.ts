/** Small formatters for what the panel shows people. */
import { INode } from './api';

/** `45 s`, `3 min`, `2 h 5 min`, `3 d 4 h`. */
export function formatAge(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) {
    return '';
  }
  const s = Math.floor(seconds);
  if (s < 60) {
    return `${s} s`;
  }
  const minutes = Math.floor(s / 60);
  if (minutes < 60) {
    return `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 24) {
    const rest = minutes % 60;
    return rest ? `${hours} h ${rest} min` : `${hours} h`;
  }
  const days = Math.floor(hours / 24);
  const restHours = hours % 24;
  return restHours ? `${days} d ${restHours} h` : `${days} d`;
}

/** `1 GPU`, `0.5 GPU`, `2.25 GPUs`, `0 GPUs`. */
export function formatGpus(gpus: number): string {
  const rounded = Math.round(gpus * 100) / 100;
  return `${rounded} GPU${rounded > 1 || rounded === 0 ? 's' : ''}`;
}

/** A fraction 0–1 as a whole percent, clamped: `0.504` → `50 %`. */
export function formatPercent(fraction: number): string {
  const clamped = Math.max(0, Math.min(1, fraction));
  return `${Math.round(clamped * 100)} %`;
}

/** `16 GiB` from MiB (`16384`), `512 MiB` below one GiB. */
export function formatMemory(mib: number): string {
  if (mib >= 1024) {
    const gib = Math.round((mib / 1024) * 10) / 10;
    return `${gib} GiB`;
  }
  return `${mib} MiB`;
}

/**
 * What a cluster's GPU nodes offer together, in GPUs, and the free share of it — null unless every
 * node's use is known (the server may not be allowed to list other namespaces' pods).
 */
export function nodesCapacity(nodes: INode[]): {
  gpus: number;
  freeFraction: number | null;
} {
  const units = nodes.reduce((sum, node) => sum + node.allocatable_units, 0);
  const gpus = nodes.reduce((sum, node) => sum + node.allocatable_gpus, 0);
  if (units <= 0 || nodes.some(node => node.used_units === null)) {
    return { gpus, freeFraction: null };
  }
  const used = nodes.reduce((sum, node) => sum + (node.used_units ?? 0), 0);
  return { gpus, freeFraction: Math.max(0, 1 - used / units) };
}
