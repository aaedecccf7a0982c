/** A kernel's GPU meter in the running-kernels list: a small bar, the numbers, the idle flag. */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { IKernel } from './api';
import { idleFlagText, meterText } from './gpumeter';

export function GpuMeterView(props: {
  kernel: IKernel;
  trans: TranslationBundle;
}): JSX.Element {
  const { kernel, trans } = props;
  const text = meterText(kernel.gpu);
  const flag = idleFlagText(kernel.gpu_idle);
  return (
    <div
      className="jp-BfJupyter-gpuMeter"
      data-reading={kernel.gpu ? 'yes' : 'no'}
      data-over-share={text.warning ? 'yes' : 'no'}
    >
      {text.fill !== null && (
        <div
          className="jp-BfJupyter-gpuMeterBar"
          role="meter"
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={Math.round(text.fill * 100)}
          aria-label={trans.__('GPU memory of this kernel')}
        >
          <div
            className="jp-BfJupyter-gpuMeterFill"
            style={{ width: `${Math.round(text.fill * 100)}%` }}
          />
        </div>
      )}
      <span className="jp-BfJupyter-gpuMeterLabel">{text.label}</span>
      {text.warning && (
        <span className="jp-BfJupyter-gpuMeterWarning" title={text.warning}>
          {trans.__('over its share')}
        </span>
      )}
      {flag && <div className="jp-BfJupyter-gpuIdleFlag">{flag}</div>}
    </div>
  );
}
