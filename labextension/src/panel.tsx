/**
 * The "GPU slices" side panel: pool, quota, the slice picker and the running GPU kernels, as
 * sections of one SidePanel, all rendering the same model. Polling pauses while it is hidden.
 */
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import {
  ReactWidget,
  SidePanel,
  ToolbarButton,
  UseSignal,
  refreshIcon
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Panel, Widget } from '@lumino/widgets';
import React from 'react';

import { KernelsView } from './kernelsview';
import { GpuSlicesModel } from './model';
import { PickerView } from './pickerview';
import { PoolView, QuotaView } from './poolview';

export const PANEL_CLASS = 'jp-BfJupyter-panel';

function Section(props: {
  title: string;
  children: React.ReactNode;
}): JSX.Element {
  return (
    <section className="jp-BfJupyter-section" aria-label={props.title}>
      <h3 className="jp-BfJupyter-sectionTitle">{props.title}</h3>
      {props.children}
    </section>
  );
}

export class GpuSlicesPanel extends SidePanel {
  constructor(
    readonly model: GpuSlicesModel,
    translator: ITranslator = nullTranslator
  ) {
    super({ translator, content: new Panel() });
    const trans = translator.load('bf-jupyter');
    this.id = 'bf-jupyter-gpu-slices';
    this.addClass(PANEL_CLASS);
    this.title.caption = trans.__('GPU slices');
    const heading = new Widget({ node: document.createElement('h2') });
    heading.node.textContent = trans.__('GPU slices');
    this.header.addWidget(heading);
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: trans.__('Refresh pool, quota and kernels'),
        onClick: () => void model.refresh().catch(() => undefined)
      })
    );
    const body = ReactWidget.create(
      <UseSignal signal={model.changed}>
        {() => (
          <div className="jp-BfJupyter-body">
            <Section title={trans.__('New GPU kernel')}>
              <PickerView model={model} trans={trans} />
            </Section>
            <Section title={trans.__('Running GPU kernels')}>
              <KernelsView
                kernels={model.kernels}
                error={model.errors.kernels}
                onStop={id => void model.stop(id)}
                trans={trans}
              />
            </Section>
            <Section title={trans.__('Quota')}>
              <QuotaView
                quota={model.quota}
                error={model.errors.quota}
                trans={trans}
              />
            </Section>
            <Section title={trans.__('GPU pool')}>
              <PoolView
                pool={model.pool}
                error={model.errors.pool}
                trans={trans}
              />
            </Section>
          </div>
        )}
      </UseSignal>
    );
    body.addClass('jp-BfJupyter-scroll');
    this.addWidget(body);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.setVisible(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.setVisible(false);
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
