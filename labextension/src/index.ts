/**
 * bf-jupyter's JupyterLab plugin: the "GPU slices" sidebar, its commands and settings.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';

import { GpuSlicesModel, IKernelOpeners, LaunchTarget } from './model';
import { GpuSlicesPanel } from './panel';
import { pickerFromSetting } from './picker';
import { refreshIntervalSeconds } from './refresh';
import gpuSvg from '../style/icons/gpu.svg';

const PLUGIN_ID = 'bf-jupyter:plugin';

export const gpuIcon = new LabIcon({ name: 'bf-jupyter:gpu', svgstr: gpuSvg });

namespace CommandIDs {
  export const open = 'bf-jupyter:open';
  export const refresh = 'bf-jupyter:refresh';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'A sidebar to pick a fractional Bitfusion GPU and start a notebook or console on it.',
  autoStart: true,
  requires: [IDocumentManager],
  optional: [
    INotebookTracker,
    IDefaultFileBrowser,
    ICommandPalette,
    ILayoutRestorer,
    ISettingRegistry,
    ITranslator
  ],
  activate: (
    app: JupyterFrontEnd,
    docManager: IDocumentManager,
    notebooks: INotebookTracker | null,
    fileBrowser: IDefaultFileBrowser | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ) => {
    const trans = (translator ?? nullTranslator).load('bf-jupyter');
    const openers: IKernelOpeners = {
      currentDirectory: () => fileBrowser?.model.path ?? '',
      currentNotebookPath: () => notebooks?.currentWidget?.context.path ?? null,
      open: (target, kernelId, directory) =>
        Private.open(app, docManager, notebooks, target, kernelId, directory)
    };
    const model = new GpuSlicesModel(openers);
    const panel = new GpuSlicesPanel(model, translator ?? nullTranslator);
    panel.title.icon = gpuIcon;
    app.shell.add(panel, 'left', { rank: 250 });
    restorer?.add(panel, 'bf-jupyter-gpu-slices');
    model.start();

    app.commands.addCommand(CommandIDs.open, {
      label: trans.__('Open GPU slices'),
      caption: trans.__('Pick a fractional GPU and start a kernel on it'),
      icon: gpuIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: trans.__('Refresh GPU pool and quota'),
      execute: () => model.refresh()
    });
    const category = trans.__('GPU slices');
    palette?.addItem({ command: CommandIDs.open, category });
    palette?.addItem({ command: CommandIDs.refresh, category });

    if (settingRegistry) {
      void settingRegistry.load(PLUGIN_ID).then(
        settings => {
          let firstLoad = true;
          const apply = () => {
            model.setInterval(
              refreshIntervalSeconds(settings.get('refreshInterval').composite)
            );
            if (firstLoad) {
              model.setPicker(
                pickerFromSetting(settings.get('defaultSlice').composite)
              );
              firstLoad = false;
            }
          };
          apply();
          settings.changed.connect(apply);
        },
        reason =>
          console.warn('bf-jupyter: settings could not be loaded', reason)
      );
    }
  }
};

namespace Private {
  /** Open a ready kernel as a new notebook, a new console, or the current notebook's kernel. */
  export async function open(
    app: JupyterFrontEnd,
    docManager: IDocumentManager,
    notebooks: INotebookTracker | null,
    target: LaunchTarget,
    kernelId: string,
    directory: string
  ): Promise<void> {
    if (target === 'console') {
      await app.commands.execute('console:create', {
        path: directory,
        kernelPreference: { id: kernelId }
      });
      return;
    }
    if (target === 'switch') {
      const current = notebooks?.currentWidget;
      if (!current) {
        throw new Error(
          'The notebook was closed before its new kernel was ready'
        );
      }
      await current.sessionContext.changeKernel({ id: kernelId });
      return;
    }
    const created = await docManager.newUntitled({
      type: 'notebook',
      path: directory
    });
    const widget = docManager.open(created.path, 'Notebook', { id: kernelId });
    // The kernels list names a kernel's notebook from its session: the panel refreshes once
    // this returns, so return once the session exists.
    await widget?.context.sessionContext.ready;
  }
}

export default plugin;
