"""End to end: the VGG19 example's ``workload.yaml`` as a user applies it, on the emulated cluster —
mutated by our webhook, run under the Bitfusion client (``bitfusion-sim``), its logs carrying the
live-curve metric records. The pod is the file's, with the node's data folder, the output claim and
a short training (32 px, 1 epoch, no weight download) as the only changes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from bf_jupyter.contract import ANNOTATION_STATUS, STATUS_INJECTED

if TYPE_CHECKING:
    from tests.support.cluster_handle import ClusterHandle
    from tests.support.stack import BitfusionStack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vgg19"
CODE = ("train.py", "vgg19_split.py", "vgg19_input.py", "vgg19_model.py")
RECORD_PREFIX = "BF-METRICS "
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def node_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node's data folder, prepared as the README says (the offline digits, 12 a class)."""
    out = tmp_path_factory.mktemp("node-data")
    subprocess.run(
        [sys.executable, str(EXAMPLE / "prepare_data.py"), "--digits", "--per-class", "12", "--digit-size", "32", "--out", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return out


def workload_pod(node: str, data: Path, output: Path) -> Obj:
    pod: Obj = next(
        d for d in yaml.safe_load_all((EXAMPLE / "workload.yaml").read_text()) if d["kind"] == "Pod"
    )
    del pod["metadata"]["namespace"]
    spec = pod["spec"]
    spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    volumes["data"]["hostPath"]["path"] = str(data)
    volumes["output"] = {"name": "output", "hostPath": {"path": str(output), "type": "Directory"}}
    spec["volumes"] = list(volumes.values())
    (container,) = spec["containers"]
    short = {"--weights=imagenet": "--weights=none", "--mixed-precision": "--image-size=32"}
    container["command"] = [short.get(word, word) for word in container["command"]] + ["--epochs=1"]
    return pod


@pytest.mark.tensorflow
def test_the_vgg19_workload_trains_on_a_slice_and_logs_metric_records(
    cluster: ClusterHandle,
    bitfusion_stack: BitfusionStack | None,
    namespace: str,
    node_data: Path,
    tmp_path: Path,
) -> None:
    if bitfusion_stack is None:
        pytest.skip("uses a hostPath on this machine: emulated cluster only")
    # given the code ConfigMap (README step 4) and the example's pod on the node holding the data
    code = {name: (EXAMPLE / name).read_text() for name in CODE}
    cluster.api.create("ConfigMap", {"metadata": {"name": "vgg19-code"}, "data": code}, namespace)
    node = cluster.api.list("Node")[0]["metadata"]["name"]
    # when it is applied
    created = cluster.api.create("Pod", workload_pod(node, node_data, tmp_path), namespace)
    # then our webhook wrapped its command in the client's run on one whole GPU
    assert created["metadata"]["annotations"][ANNOTATION_STATUS] == STATUS_INJECTED
    run = created["spec"]["containers"][0]["command"]
    assert run[1:7] == ["run", "-n", "1", "-p", "1", "--"] and run[7:9] == [
        "python",
        "/workspace/code/train.py",
    ]
    done = cluster.wait_for_pod_phase(
        namespace, "vgg19-train", ("Succeeded", "Failed"), timeout=240
    )
    log = cluster.pod_log(namespace, "vgg19-train", container="train")
    assert done["status"]["phase"] == "Succeeded", log[-4000:]
    # and it trained under the lease, tested, saved to the output volume, and released the GPU
    assert "Locked 1 GPUs" in log and "[vgg19] test split:" in log
    assert json.loads((tmp_path / "history.json").read_text())["epochs_run"] == 1
    assert bitfusion_stack.leases(namespace) == []
    # and its log carries the live-curve callback's records: the run's begin, its epoch, its end
    records = [
        json.loads(line[len(RECORD_PREFIX) :])
        for line in log.splitlines()
        if line.startswith(RECORD_PREFIX + "{")
    ]
    kinds = [record["kind"] for record in records]
    assert kinds[0] == "begin" and kinds[-1] == "end" and kinds.count("epoch") == 1
    epoch = next(record for record in records if record["kind"] == "epoch")
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epoch["metrics"])
