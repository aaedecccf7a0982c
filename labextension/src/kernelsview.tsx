/** Running GPU kernels with their slice, notebook and age, each with a Stop button. */
import { TranslationBundle } from '@jupyterlab/translation';
import { Button } from '@jupyterlab/ui-components';
import React from 'react';

import { IKernel } from './api';
import { formatAge } from './format';
import { GpuMeterView } from './gpumeterview';
import { Notice } from './poolview';

export function KernelsView(props: {
  kernels: IKernel[];
  error?: string;
  onStop: (id: string) => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { kernels, error, onStop, trans } = props;
  return (
    <div className="jp-BfJupyter-kernels">
      {error && <Notice error={error} />}
      {kernels.length === 0 ? (
        <p className="jp-BfJupyter-note">
          {trans.__('No GPU kernels are running.')}
        </p>
      ) : (
        <ul>
          {kernels.map(kernel => (
            <li
              key={kernel.id}
              className="jp-BfJupyter-kernel"
              data-kernel-id={kernel.id}
              data-state={kernel.state}
            >
              <div className="jp-BfJupyter-kernelMain">
                <span
                  className="jp-BfJupyter-kernelSlice"
                  title={kernel.description}
                >
                  {kernel.slice}
                </span>
                <span className="jp-BfJupyter-kernelState">{kernel.state}</span>
                <Button
                  small
                  minimal
                  className="jp-BfJupyter-stop"
                  title={trans.__('Stop this kernel and free its slice')}
                  onClick={() => onStop(kernel.id)}
                >
                  {trans.__('Stop')}
                </Button>
              </div>
              <div className="jp-BfJupyter-kernelMeta">
                {kernel.path || trans.__('(no notebook)')} · {kernel.kernelspec}
                {kernel.age_seconds !== null
                  ? ` · ${formatAge(kernel.age_seconds)}`
                  : ''}
                {kernel.pod ? ` · ${trans.__('pod %1', kernel.pod)}` : ''}
              </div>
              {kernel.state !== 'failed' && (
                <GpuMeterView kernel={kernel} trans={trans} />
              )}
              {kernel.reason && <Notice error={kernel.reason} />}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
