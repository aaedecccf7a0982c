"""vgg19_bitfusion.ipynb runs headless, top to bottom, as ``make demo``'s users run it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.vgg19.conftest import EXAMPLE

NOTEBOOK = EXAMPLE / "vgg19_bitfusion.ipynb"


def texts(cell: Any) -> str:
    """Everything a cell printed or displayed as text or HTML."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts.extend(str(data.get(kind, "")) for kind in ("text/plain", "text/html"))
    return "\n".join(parts)


def cell_starting(notebook: Any, start: str) -> Any:
    return next(
        c for c in notebook.cells if c.cell_type == "code" and c.source.lstrip().startswith(start)
    )


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The notebook executed by nbclient on the embedded pool, small settings, no cluster."""
    import nbformat
    from nbclient import NotebookClient

    work = tmp_path_factory.mktemp("notebook")
    settings = {
        "VGG19_WORK": str(work / "work"),
        "VGG19_PER_CLASS": "20",
        "VGG19_EPOCHS": "2",
        "VGG19_IMAGE_SIZE": "32",
        "VGG19_SUBMIT": "auto",
        "KUBECONFIG": str(work / "no-kubeconfig"),
        "BF_SIM_HOME": str(work / "sim"),
        "BF_SIM_POOL": "virtual",
    }
    with pytest.MonkeyPatch.context() as patch:  # the kernel inherits this environment
        for name, value in settings.items():
            patch.setenv(name, value)
        patch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
        client = NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(EXAMPLE)}},
        )
        client.execute()
    notebook.metadata["work"] = settings["VGG19_WORK"]
    return notebook


@pytest.mark.tensorflow
def test_the_notebook_runs_without_an_error(executed: Any) -> None:
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    assert all(c.execution_count for c in executed.cells if c.cell_type == "code")


@pytest.mark.tensorflow
def test_training_runs_on_the_slice_with_live_curves(executed: Any) -> None:
    # the run cell leased the slice, trained, and displayed the live-curve widget
    run = cell_starting(executed, "%bitfusion run")
    printed = texts(run)
    assert "Locked 1 GPUs with partial memory 0.5" in printed and "Released GPUs" in printed
    assert "[vgg19] test split: 12 images" in printed
    views = [
        o for o in run.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(views) == 1
    # and the saved notebook keeps the curves: every epoch metric, the run finished
    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    curves = [
        m["state"]
        for m in state.values()
        if m["state"].get("_anywidget_id", "").endswith("LiveCurves")
    ]
    assert len(curves) == 1 and curves[0]["status"] == "finished"
    assert {"epoch:loss", "epoch:val_loss", "epoch:accuracy", "epoch:val_accuracy"} <= set(
        curves[0]["curves"]
    )


@pytest.mark.tensorflow
def test_the_confusion_matrix_covers_the_test_split(executed: Any) -> None:
    shown = texts(cell_starting(executed, "import html"))
    history = json.loads((Path(executed.metadata["work"]) / "run" / "history.json").read_text())
    assert f"Test split: {history['test']['images']} images" in shown
    assert shown.count("<tr>") == 1 + 4  # a header row and one row per class


@pytest.mark.tensorflow
def test_without_a_cluster_the_submit_step_says_why_it_is_skipped(executed: Any) -> None:
    shown = texts(cell_starting(executed, "from bf_jupyter.kubeapi"))
    assert "Not submitting: no Kubernetes API configured" in shown
