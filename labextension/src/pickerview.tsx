/** The slice picker, what the slice costs, the launch actions and the kernels starting. */
import { TranslationBundle } from '@jupyterlab/translation';
import { Button } from '@jupyterlab/ui-components';
import React from 'react';

import { IPrice } from './api';
import { backendLabel, backendsOf, chargesText } from './backends';
import { formatGpus } from './format';
import { GpuSlicesModel, IStartup, LaunchTarget } from './model';
import { ShareMode, fitMode, gpuLimit, modesFor, stepGpus } from './picker';
import { Notice } from './poolview';

export function PickerView(props: {
  model: GpuSlicesModel;
  trans: TranslationBundle;
}): JSX.Element {
  const { model, trans } = props;
  const { picker, price, info } = model;
  const limit = gpuLimit(
    info?.max_gpus ?? null,
    model.pool?.largest_server_gpus ?? null
  );
  const blocked = model.launchBlocked;
  const launch = (target: LaunchTarget) => () => void model.launch(target);
  const forms = model.forms;
  const mode = fitMode(picker, forms);
  const modeLabels: Record<ShareMode, string> = {
    percent: trans.__('Share'),
    memory: trans.__('Memory'),
    mig: trans.__('MIG'),
    shared: trans.__('Shared'),
    whole: trans.__('Whole GPUs')
  };
  return (
    <div className="jp-BfJupyter-picker">
      <BackendChoice model={model} trans={trans} />
      <div className="jp-BfJupyter-row">
        <label htmlFor="jp-BfJupyter-gpus">{trans.__('GPUs')}</label>
        <div className="jp-BfJupyter-stepper">
          <Button
            small
            aria-label={trans.__('Fewer GPUs')}
            onClick={() =>
              model.setPicker({ gpus: stepGpus(picker.gpus, -1, limit) })
            }
          >
            −
          </Button>
          <input
            id="jp-BfJupyter-gpus"
            className="jp-mod-styled"
            type="number"
            min={1}
            max={limit ?? undefined}
            value={picker.gpus}
            onChange={e =>
              model.setPicker({
                gpus: stepGpus(Number(e.target.value) || 1, 0, limit)
              })
            }
          />
          <Button
            small
            aria-label={trans.__('More GPUs')}
            onClick={() =>
              model.setPicker({ gpus: stepGpus(picker.gpus, +1, limit) })
            }
          >
            +
          </Button>
        </div>
      </div>
      <div
        className="jp-BfJupyter-row"
        role="radiogroup"
        aria-label={trans.__('Share of each GPU')}
      >
        {modesFor(forms).map(offered => (
          <label key={offered}>
            <input
              type="radio"
              name="jp-BfJupyter-mode"
              checked={mode === offered}
              onChange={() => model.setPicker({ mode: offered })}
            />
            {modeLabels[offered]}
          </label>
        ))}
      </div>
      {mode === 'mig' && (
        <div className="jp-BfJupyter-row">
          <select
            className="jp-mod-styled"
            aria-label={trans.__('MIG profile')}
            value={picker.migProfile}
            onChange={e => model.setPicker({ migProfile: e.target.value })}
          >
            {model.migProfiles.length === 0 && (
              <option value="">{trans.__('No MIG profile offered')}</option>
            )}
            {model.migProfiles.map(profile => (
              <option key={profile} value={profile}>
                {profile}
              </option>
            ))}
          </select>
        </div>
      )}
      {mode === 'percent' && (
        <div className="jp-BfJupyter-row">
          <input
            className="jp-BfJupyter-slider"
            type="range"
            min={1}
            max={100}
            step={1}
            aria-label={trans.__('Share of each GPU in percent')}
            value={picker.percent}
            onChange={e => model.setPicker({ percent: Number(e.target.value) })}
          />
          <span className="jp-BfJupyter-value">{picker.percent} %</span>
        </div>
      )}
      {mode === 'memory' && (
        <div className="jp-BfJupyter-row">
          <input
            className="jp-mod-styled jp-BfJupyter-memory"
            type="number"
            min={1}
            aria-label={trans.__('Memory per GPU')}
            value={picker.memory}
            onChange={e =>
              model.setPicker({
                memory: Math.max(1, Math.round(Number(e.target.value) || 1))
              })
            }
          />
          <select
            className="jp-mod-styled"
            aria-label={trans.__('Memory unit')}
            value={picker.memoryUnit}
            onChange={e =>
              model.setPicker({
                memoryUnit: e.target.value === 'Mi' ? 'Mi' : 'Gi'
              })
            }
          >
            <option value="Gi">GiB</option>
            <option value="Mi">MiB</option>
          </select>
          <span className="jp-BfJupyter-note">{trans.__('per GPU')}</span>
        </div>
      )}
      {forms.includes('cores') && (mode === 'percent' || mode === 'memory') && (
        <div className="jp-BfJupyter-row">
          <label htmlFor="jp-BfJupyter-cores">{trans.__('Compute')}</label>
          <input
            id="jp-BfJupyter-cores"
            className="jp-mod-styled jp-BfJupyter-memory"
            type="number"
            min={1}
            max={100}
            placeholder={trans.__('any')}
            aria-label={trans.__('Compute share of each GPU in percent')}
            value={picker.cores ?? ''}
            onChange={e =>
              model.setPicker({
                cores: e.target.value === '' ? null : Number(e.target.value)
              })
            }
          />
          <span className="jp-BfJupyter-note">{trans.__('% per GPU')}</span>
        </div>
      )}
      <details className="jp-BfJupyter-advanced">
        <summary>{trans.__('Advanced')}</summary>
        {forms.includes('filters') && (
          <label>
            {trans.__('Filters')}
            <input
              className="jp-mod-styled"
              type="text"
              placeholder="device.name=V100"
              value={picker.filters}
              onChange={e => model.setPicker({ filters: e.target.value })}
            />
          </label>
        )}
        {info && info.kernelspecs.length > 1 && (
          <label>
            {trans.__('Kernel')}
            <select
              className="jp-mod-styled"
              value={model.kernelspec ?? ''}
              onChange={e => model.setKernelspec(e.target.value)}
            >
              {info.kernelspecs.map(spec => (
                <option key={spec.name} value={spec.name}>
                  {spec.display_name}
                </option>
              ))}
            </select>
          </label>
        )}
      </details>
      <div className="jp-BfJupyter-price" aria-live="polite">
        <code>{model.slice}</code>
        {price && !model.pricing ? ` · ${costText(price, trans)}` : ''}
      </div>
      {blocked && !model.pricing && <Notice error={blocked} />}
      <div className="jp-BfJupyter-actions">
        <Button
          className="jp-mod-accept"
          disabled={!!blocked}
          title={blocked ?? trans.__('A new notebook on this slice')}
          onClick={launch('notebook')}
        >
          {trans.__('New notebook')}
        </Button>
        <Button
          disabled={!!blocked}
          title={blocked ?? trans.__('A new console on this slice')}
          onClick={launch('console')}
        >
          {trans.__('New console')}
        </Button>
        <Button
          minimal
          disabled={!!blocked}
          title={
            blocked ??
            trans.__(
              "Replace the current notebook's kernel with one on this slice"
            )
          }
          onClick={launch('switch')}
        >
          {trans.__('Switch kernel')}
        </Button>
      </div>
      {model.startups.map(startup => (
        <StartupView
          key={startup.key}
          startup={startup}
          onDismiss={() => model.dismissStartup(startup.key)}
          trans={trans}
        />
      ))}
    </div>
  );
}

/** What the price says a slice costs: Bitfusion units, else the backend's charges. */
function costText(price: IPrice, trans: TranslationBundle): string {
  if (price.units !== null && price.gpus !== null) {
    return trans.__('costs %1 units (%2)', price.units, formatGpus(price.gpus));
  }
  return price.charges && price.charges.length > 0
    ? trans.__('costs %1', chargesText(price.charges))
    : '';
}

/** The GPU backend: a menu when the server offers several, each with its isolation label. */
function BackendChoice(props: {
  model: GpuSlicesModel;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { model, trans } = props;
  const backends = backendsOf(model.info);
  const chosen = model.backend;
  if (!chosen) {
    return null;
  }
  return (
    <div className="jp-BfJupyter-row jp-BfJupyter-backend">
      <label htmlFor="jp-BfJupyter-backend">{trans.__('GPU backend')}</label>
      {backends.length > 1 ? (
        <select
          id="jp-BfJupyter-backend"
          className="jp-mod-styled"
          title={chosen.isolation.sentence}
          value={chosen.name}
          onChange={e => model.setGpuBackend(e.target.value)}
        >
          {backends.map(backend => (
            <option
              key={backend.name}
              value={backend.name}
              title={backend.isolation.sentence}
            >
              {backendLabel(backend)}
            </option>
          ))}
        </select>
      ) : (
        <span
          id="jp-BfJupyter-backend"
          className="jp-BfJupyter-note"
          title={chosen.isolation.sentence}
        >
          {backendLabel(chosen)}
        </span>
      )}
    </div>
  );
}

function StartupView(props: {
  startup: IStartup;
  onDismiss: () => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { startup, onDismiss, trans } = props;
  const title = {
    starting: trans.__('Starting %1…', startup.slice),
    ready: trans.__('Ready on %1', startup.slice),
    failed: trans.__('Could not start %1', startup.slice)
  }[startup.state];
  return (
    <div className="jp-BfJupyter-startup" data-state={startup.state}>
      <div className="jp-BfJupyter-startupTitle">
        <span>{title}</span>
        {startup.state !== 'starting' && (
          <Button
            small
            minimal
            aria-label={trans.__('Dismiss')}
            onClick={onDismiss}
          >
            ×
          </Button>
        )}
      </div>
      <ol className="jp-BfJupyter-events">
        {startup.events.map(event => (
          <li key={`${event.time}-${event.stage}`} data-stage={event.stage}>
            <span className="jp-BfJupyter-stage">{event.stage}</span>{' '}
            {event.message}
          </li>
        ))}
      </ol>
      {startup.reason && <Notice error={startup.reason} />}
    </div>
  );
}
