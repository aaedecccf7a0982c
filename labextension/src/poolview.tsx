/** The pool (a bar per GPU, grouped by server; nodes on Kubernetes) and the quota bar. */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { IGpu, INode, IPool, IQuota } from './api';
import {
  formatGpus,
  formatMemory,
  formatPercent,
  nodesCapacity
} from './format';

export function UsageBar(props: {
  used: number;
  label: string;
  title?: string;
}): JSX.Element {
  const used = Math.max(0, Math.min(1, props.used));
  return (
    <div className="jp-BfJupyter-bar" title={props.title ?? props.label}>
      <div
        className="jp-BfJupyter-barUsed"
        style={{ width: `${used * 100}%` }}
        data-level={used >= 0.9 ? 'high' : used >= 0.6 ? 'medium' : 'low'}
      />
      <span className="jp-BfJupyter-barLabel">{props.label}</span>
    </div>
  );
}

function GpuRow(props: { gpu: IGpu; trans: TranslationBundle }): JSX.Element {
  const { gpu, trans } = props;
  const free = formatMemory(gpu.free_mib);
  const total = formatMemory(gpu.memory_mib);
  return (
    <li className="jp-BfJupyter-gpu">
      <span className="jp-BfJupyter-gpuName">
        {trans.__('GPU %1', gpu.index)}
        {gpu.name ? ` · ${gpu.name}` : ''}
      </span>
      <UsageBar
        used={gpu.used_fraction}
        label={trans.__(
          '%1 used · %2 of %3 free',
          formatPercent(gpu.used_fraction),
          free,
          total
        )}
      />
    </li>
  );
}

function NodeRow(props: {
  node: INode;
  trans: TranslationBundle;
}): JSX.Element {
  const { node, trans } = props;
  const used = node.used_units;
  const label =
    used === null
      ? trans.__('%1 allocatable', formatGpus(node.allocatable_gpus))
      : trans.__(
          '%1 of %2 requested',
          formatGpus(used / 100),
          formatGpus(node.allocatable_gpus)
        );
  return (
    <li className="jp-BfJupyter-gpu">
      <span className="jp-BfJupyter-gpuName">{node.name}</span>
      <UsageBar
        used={used === null ? 0 : used / Math.max(1, node.allocatable_units)}
        label={label}
      />
    </li>
  );
}

/** On Kubernetes without a Bitfusion client in the server's pod: what the nodes offer. */
function nodesSummary(nodes: INode[], trans: TranslationBundle): string {
  const { gpus, freeFraction } = nodesCapacity(nodes);
  const where =
    nodes.length === 1
      ? trans.__('%1 on 1 node', formatGpus(gpus))
      : trans.__('%1 on %2 nodes', formatGpus(gpus), nodes.length);
  return freeFraction === null
    ? where
    : trans.__('%1, %2 free', where, formatPercent(freeFraction));
}

export function PoolView(props: {
  pool: IPool | null;
  error?: string;
  trans: TranslationBundle;
}): JSX.Element {
  const { pool, error, trans } = props;
  if (!pool) {
    return <Notice error={error} waiting={trans.__('Reading the GPU pool…')} />;
  }
  return (
    <div className="jp-BfJupyter-pool">
      <div className="jp-BfJupyter-summary">
        {pool.servers.length === 0 && pool.nodes.length > 0
          ? nodesSummary(pool.nodes, trans)
          : trans.__(
              '%1 GPUs, %2 free',
              pool.total_gpus,
              formatPercent(pool.free_fraction)
            )}
        {pool.simulated && (
          <span
            className="jp-BfJupyter-badge"
            title={trans.__('bitfusion-sim: a simulated pool, no real GPUs')}
          >
            {trans.__('simulated')}
          </span>
        )}
        <span className="jp-BfJupyter-backend">{pool.backend}</span>
      </div>
      {error && (
        <Notice error={trans.__('Showing the last reading: %1', error)} />
      )}
      {pool.servers.map(server => (
        <section key={`s${server.index}`} className="jp-BfJupyter-server">
          <h4 title={server.status}>
            {trans.__('Server %1', server.index)}{' '}
            <small>{server.address}</small>
          </h4>
          <ul>
            {server.gpus.map(gpu => (
              <GpuRow key={gpu.index} gpu={gpu} trans={trans} />
            ))}
          </ul>
        </section>
      ))}
      {pool.nodes.length > 0 && (
        <section className="jp-BfJupyter-server">
          <h4>{trans.__('Cluster nodes')}</h4>
          <ul>
            {pool.nodes.map(node => (
              <NodeRow key={node.name} node={node} trans={trans} />
            ))}
          </ul>
        </section>
      )}
      {pool.warnings.map(w => (
        <Notice key={w} error={w} />
      ))}
    </div>
  );
}

export function QuotaView(props: {
  quota: IQuota | null;
  error?: string;
  trans: TranslationBundle;
}): JSX.Element {
  const { quota, error, trans } = props;
  if (!quota) {
    return <Notice error={error} waiting={trans.__('Reading the quota…')} />;
  }
  return (
    <div className="jp-BfJupyter-quota">
      {quota.has_quota && quota.hard_units ? (
        <UsageBar
          used={(quota.used_units ?? 0) / quota.hard_units}
          label={trans.__(
            '%1 of %2 in use',
            formatGpus(quota.used_gpus ?? 0),
            formatGpus(quota.hard_gpus ?? 0)
          )}
          title={quota.unit}
        />
      ) : null}
      <p className="jp-BfJupyter-note">
        {quota.message}
        {quota.namespace
          ? ` ${trans.__('Namespace: %1', quota.namespace)}`
          : ''}
      </p>
      {error && (
        <Notice error={trans.__('Showing the last reading: %1', error)} />
      )}
    </div>
  );
}

export function Notice(props: {
  error?: string;
  waiting?: string;
}): JSX.Element {
  if (props.error) {
    return (
      <p className="jp-BfJupyter-error" role="alert">
        {props.error}
      </p>
    );
  }
  return <p className="jp-BfJupyter-note">{props.waiting}</p>;
}
